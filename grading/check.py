"""The trusted side of grading: references and checks, in a process that runs no student code.

    python -m grading.check reference ASSIGNMENT SEED OUT
    python -m grading.check check ASSIGNMENT EXPORTS REFS RESULT.json GRADE_ID

Run by the grader in a sandbox of its own (read-only, no network) after the submission's
processes are gone, once per graded cell; see grading.checks for the protocol. RESULT.json is
that grade_id's list of checks, {"name", "passed", "detail"}. An exception inside a check is a
failed check with the exception's type, never a crash; and since every graded cell is checked
in a process of its own, an export that exhausts the checker's memory or time costs only its
own cell.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

from grading import checks


class _NotInstalled(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: importing one of `names` (or a submodule) raises
    ModuleNotFoundError, as when the package is not installed."""

    def __init__(self, names: tuple[str, ...]):
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (unused by the checks)",
                                      name=fullname)
        # Any other name: None, for the next finder.


def load(assignment: str) -> ModuleType:
    """The assignment's checks module, with its UNUSED_PACKAGES made unimportable in this
    process (see grading.checks)."""
    module = checks.load(assignment)
    unused = tuple(getattr(module, "UNUSED_PACKAGES", ()))
    if unused and not any(isinstance(f, _NotInstalled) for f in sys.meta_path):
        sys.meta_path.insert(0, _NotInstalled(unused))
    return module


def run_reference(assignment: str, seed: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    load(assignment).reference(seed, out)


def run_check(assignment: str, gid: str, exports: Path, refs: Path) -> list[dict]:
    module = load(assignment)
    try:
        return [asdict(c) for c in module.check(gid, exports / gid, refs)]
    except Exception as exc:  # noqa: BLE001  (a hostile file is a failed check, not a crash)
        return [{"name": "the exported files could be checked", "passed": False,
                 "detail": f"{type(exc).__name__} while checking"}]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.setrecursionlimit(10_000)
    if argv[0] == "reference":
        run_reference(argv[1], int(argv[2]), Path(argv[3]))
        return 0
    if argv[0] == "check":
        result = run_check(argv[1], argv[5], Path(argv[2]), Path(argv[3]))
        Path(argv[4]).write_text(json.dumps(result))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
