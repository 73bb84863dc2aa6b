"""The featherweight self-test assignment (tests/fixtures/selftest): no framework, so every
hostile behaviour the grader must survive costs about a second to grade."""

from __future__ import annotations

import json
import math
from pathlib import Path

from grading.checks import Check, Reload, read_json

HELPERS = '''
import random

def numbers(seed, n=7):
    rng = random.Random(seed)
    return [round(rng.uniform(-100, 100), 3) for _ in range(n)]
'''

EXPORTS = {
    "selftest-ex1-tests": """
        save = student("save_numbers")
        folder = out / "saved"
        folder.mkdir()
        save(str(folder / "data"), h["numbers"](seed))
        if not any(p.is_file() for p in folder.rglob("*")):
            raise FileNotFoundError("save_numbers(path, numbers) wrote no file at path")
    """,
    "selftest-ex2-tests": """
        import json
        (out / "mean.json").write_text(json.dumps(float(student("mean")(h["numbers"](seed)))))
    """,
}


# Loading runs in a fresh kernel, on a copy of what the saving half wrote, at a new path.
RELOADS = {
    "selftest-ex1-tests": Reload("""
        import json
        got = [float(x) for x in student("load_numbers")(str(saved / "saved" / "data"))]
        (out / "loaded.json").write_text(json.dumps(got))
    """, ("saved/data",)),
}


def reference(seed: int, out: Path) -> None:
    ns: dict = {}
    exec(HELPERS, ns)
    (out / "numbers.json").write_text(json.dumps(ns["numbers"](seed)))


def check(grade_id: str, exports: Path, refs: Path) -> list[Check]:
    expected = json.loads((refs / "numbers.json").read_text())
    if grade_id == "selftest-ex1-tests":
        got, _ = read_json(exports / "loaded.json")
        same = isinstance(got, list) and got == expected
        return [Check("load_numbers returns what save_numbers stored, from a moved folder", same,
                      "" if same else "the numbers differ or were not exported")]
    got, _ = read_json(exports / "mean.json")
    want = sum(expected) / len(expected)
    ok = isinstance(got, (int, float)) and not isinstance(got, bool) and math.isclose(got, want, rel_tol=1e-9)
    return [Check("mean gives the arithmetic mean", ok, "" if ok else f"got {got!r}")]
