"""What decides a score: one module per assignment, run only by the grader's trusted processes.

The student's notebook runs in a sandboxed kernel. After the cell of each graded test (its
nbgrader grade_id), the runner executes that assignment's *export* code for the grade_id in
the same kernel: it calls the functions the prompt defines (with arguments the grader chooses)
and writes what they produced into a fresh folder, in safe formats only (safetensors, npz
loaded with allow_pickle=False, JSON, or the framework's own non-pickle model format).
Afterwards, when every process the submission started is gone, a fresh sandboxed process that
runs no student code computes the references itself (`reference`) and compares
(`check`). Nothing the submission does in its kernel (patched functions, IPython hooks, edited
test cells or metadata) reaches that process, so its verdict cannot be forged; the visible
tests in the notebook only give the student feedback.

An assignment module `grading.checks.<assignment>` defines:

HELPERS: str
    Python source defining deterministic helpers (data, model builders, training), executed
    both in the kernel (inside export code) and in the reference process, so both compute
    with the same code.
EXPORTS: dict[str, str]
    grade_id -> Python source run in the student's kernel. Formatted with
    `str.format(out=..., seed=..., helpers=...)`: `{out}` is the repr of an empty folder for
    this grade_id's files, `{seed}` an int chosen per grading run, `{helpers}` the repr of
    HELPERS. The code defines and calls one function and deletes it, leaving no other name in
    the student's namespace. An exception in it is reported to the student by its first line.
RELOADS: dict[str, Reload] (optional)
    grade_id -> the loading half of an exercise that saves and loads. Its EXPORTS code only
    saves: it calls the student's save function with paths inside `{out}` (Reload.paths,
    relative to `{out}`). The runner seals that folder; once the notebook's kernel is gone, a
    fresh kernel in a fresh copy of the submission runs the notebook up to the grade cell and
    then Reload.code, formatted like EXPORTS plus `{saved}`: the repr of a folder holding, at
    the same relative paths, only what the prompt lets a save write (the file or folder at
    each path, and files whose names start with it). What it loads can only come from there.
reference(seed: int, out: pathlib.Path) -> None
    Trusted: compute the expected values for `seed` and write them into `out`.
check(grade_id: str, exports: pathlib.Path, refs: pathlib.Path) -> list[Check]
    Trusted: compare the files in `exports` (untrusted: load with safe loaders only; a missing
    or malformed file is a failed check, never an exception) with the references.

A grade cell's points are shared equally by its checks (`score`). The assignment modules
compare arrays with this module's `close`, `max_diff` and `difference` (one tolerance, RTOL
and ATOL) and report with `Check`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np


@dataclass
class Check:
    """One graded property: `name` says what was checked (shown to the student), `detail` why
    it failed (a value or a message, never the check's code)."""

    name: str
    passed: bool
    detail: str = ""

    @classmethod
    def from_json(cls, item: object) -> Check | None:
        """A check as the checker process wrote it (JSON, so untrusted in shape): strings cut
        to length, `passed` only if it is exactly true; None if `item` is not an object."""
        if not isinstance(item, dict):
            return None
        return cls(str(item.get("name", ""))[:300], item.get("passed") is True,
                   str(item.get("detail", ""))[:500])


@dataclass(frozen=True)
class Reload:
    """The loading half of a grade_id (see RELOADS above)."""

    code: str
    paths: tuple[str, ...]


def load(assignment: str) -> ModuleType:
    if not assignment.isidentifier():
        raise ValueError(f"{assignment!r}: not an assignment name")
    return importlib.import_module(f"grading.checks.{assignment}")


# Comparing arrays, for every assignment module: one tolerance, one way to say what differs.
RTOL, ATOL = 1e-5, 1e-6


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, both numeric, and equal within RTOL and ATOL (compared in float64)."""
    return (a.shape == b.shape and np.issubdtype(a.dtype, np.number)
            and np.issubdtype(b.dtype, np.number)
            and bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=RTOL, atol=ATOL)))


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """The largest absolute difference of two numeric arrays of one shape (0 if empty)."""
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def difference(a: np.ndarray, b: np.ndarray) -> str:
    """What the student's array `a` gets wrong against `b`: its shape, its dtype, or by how much."""
    if a.shape != b.shape:
        return f"shape {a.shape}, expected {b.shape}"
    if not np.issubdtype(a.dtype, np.number):
        return f"dtype {a.dtype}"
    return f"max difference {max_diff(a, b):.3g}"


def score(points: float, checks: list[Check]) -> float:
    """Points earned: the grade cell's points shared equally by its checks."""
    if not checks:
        return 0.0
    passed = sum(c.passed is True for c in checks)
    return round(points * passed / len(checks), 4)
