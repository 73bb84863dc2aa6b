"""The featherweight self-test assignment (tests/fixtures/selftest): no framework, so every
hostile behaviour the grader must survive costs about a second to grade."""

from __future__ import annotations

import json
import math
from pathlib import Path

from grading.checks import Check, Reload

HELPERS = '''
import random

def numbers(seed, n=7):
    rng = random.Random(seed)
    return [round(rng.uniform(-100, 100), 3) for _ in range(n)]
'''

EXPORTS = {
    "selftest-ex1-tests": '''
def _grader_export():
    import pathlib
    ns = {{}}
    exec({helpers}, ns)
    save = globals().get("save_numbers")
    if save is None:
        raise NameError("save_numbers is not defined")
    folder = pathlib.Path({out}, "saved")
    folder.mkdir()
    save(str(folder / "data"), ns["numbers"]({seed}))
    if not any(p.is_file() for p in folder.rglob("*")):
        raise FileNotFoundError("save_numbers(path, numbers) wrote no file at path")
_grader_export()
del _grader_export
''',
    "selftest-ex2-tests": '''
def _grader_export():
    import json, pathlib
    ns = {{}}
    exec({helpers}, ns)
    mean = globals().get("mean")
    if mean is None:
        raise NameError("mean is not defined")
    pathlib.Path({out}, "mean.json").write_text(json.dumps(float(mean(ns["numbers"]({seed})))))
_grader_export()
del _grader_export
''',
}


# Loading runs in a fresh kernel, on a copy of what the saving half wrote, at a new path.
RELOADS = {
    "selftest-ex1-tests": Reload('''
def _grader_export():
    import json, pathlib
    load = globals().get("load_numbers")
    if load is None:
        raise NameError("load_numbers is not defined")
    got = [float(x) for x in load(str(pathlib.Path({saved}, "saved", "data")))]
    pathlib.Path({out}, "loaded.json").write_text(json.dumps(got))
_grader_export()
del _grader_export
''', ("saved/data",)),
}


def reference(seed: int, out: Path) -> None:
    ns: dict = {}
    exec(HELPERS, ns)
    (out / "numbers.json").write_text(json.dumps(ns["numbers"](seed)))


def _load_json(path: Path, limit: int = 1_000_000):
    if not path.is_file() or path.stat().st_size > limit:
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None


def check(grade_id: str, exports: Path, refs: Path) -> list[Check]:
    expected = json.loads((refs / "numbers.json").read_text())
    if grade_id == "selftest-ex1-tests":
        got = _load_json(exports / "loaded.json")
        same = isinstance(got, list) and got == expected
        return [Check("load_numbers returns what save_numbers stored, from a moved folder", same,
                      "" if same else "the numbers differ or were not exported")]
    got = _load_json(exports / "mean.json")
    want = sum(expected) / len(expected)
    ok = isinstance(got, (int, float)) and not isinstance(got, bool) and math.isclose(got, want, rel_tol=1e-9)
    return [Check("mean gives the arithmetic mean", ok, "" if ok else f"got {got!r}")]
