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
    grade_id -> the *body* of what runs in the student's kernel after that grade cell: plain
    Python, no templating. `kernel_code` (below) wraps it in a function and runs it there; in
    the body these names are defined:
        out      pathlib.Path, an empty folder for this grade_id's files (the only ones read)
        seed     int, chosen per grading run
        saved    pathlib.Path of the sealed files in a RELOADS body, None in an EXPORTS body
        h        dict, HELPERS executed in a fresh namespace
        student(name)  the student's callable `name` from the kernel's namespace (NameError
                       naming the cell to run if there is none)
        scratch(name)  a new empty folder, removed with the function's other temporary files
    The working folder is a fresh temporary folder while the body runs, so nothing relies on
    it. An exception in the body is reported to the student by its first line.
RELOADS: dict[str, Reload] (optional)
    grade_id -> the loading half of an exercise that saves and loads. Its EXPORTS body only
    saves: it calls the student's save function with paths inside `out` (Reload.paths,
    relative to `out`). The runner seals that folder; once the notebook's kernel is gone, a
    fresh kernel in a fresh copy of the submission runs the notebook up to the grade cell and
    then Reload.body, with `saved` the folder holding, at the same relative paths, only what
    the prompt lets a save write (the file or folder at each path, and files whose names start
    with it). What it loads can only come from there.
WARM_COMPILE_CACHE: bool (optional)
    True where the framework keeps compiled code in a persistent cache (JAX's XLA cache):
    each worker then grades the solution once first, and every sandboxed kernel starts with a
    private copy of the cache that run left (grading.submission.COMPILE_CACHE), so the
    computations every notebook shares are not compiled again for each submission.
UNUSED_PACKAGES: tuple[str, ...] (optional)
    Top-level packages that the framework imports when they are installed, each behind
    `except ImportError`, and that neither `reference` nor `check` uses. The trusted process
    (grading.check) makes them fail to import, as if not installed, so it does not spend the
    time loading them.
reference(seed: int, out: pathlib.Path) -> None
    Trusted: compute the expected values for `seed` and write them into `out`.
check(grade_id: str, exports: pathlib.Path, refs: pathlib.Path) -> list[Check]
    Trusted: compare the files in `exports` (untrusted: read them with `read_arrays` and
    `read_json` or another safe loader; a missing or malformed file is a failed check, never
    an exception) with the references.

A grade cell's points are shared equally by its checks (`score`). The assignment modules
compare arrays with this module's `close`, `max_diff` and `difference` (one tolerance, RTOL
and ATOL) and report with `Check`.
"""

from __future__ import annotations

import base64
import importlib
import json
import secrets
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from grading.limits import MAX_CHECKED_FILE


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

    body: str
    paths: tuple[str, ...]


def load(assignment: str) -> ModuleType:
    if not assignment.isidentifier():
        raise ValueError(f"{assignment!r}: not an assignment name")
    return importlib.import_module(f"grading.checks.{assignment}")


# What runs in the kernel: the one place that turns a body into code and names what it defines.
_WRAPPER = """\
def {name}(out, seed, saved, helpers):
    import os as _os, pathlib as _pathlib, shutil as _shutil, tempfile as _tempfile
    out = _pathlib.Path(out)
    saved = None if saved is None else _pathlib.Path(saved)
    h = {{}}
    exec(helpers, h)
    _user = globals()
    _work = _pathlib.Path(_tempfile.mkdtemp(prefix="grading-"))

    def student(name):
        fn = _user.get(name)
        if not callable(fn):
            raise NameError(f"{{name}} is not defined: run the cell that defines it")
        return fn

    def scratch(name):
        path = _work / name
        path.mkdir()
        return path

    try:
        _here = _os.getcwd()
    except OSError:
        _here = None
    try:
        _os.chdir(scratch(".cwd"))
{body}
    finally:
        if _here is not None:
            _os.chdir(_here)
        _shutil.rmtree(_work, ignore_errors=True)


try:
    {name}({out!r}, {seed!r}, {saved!r}, {helpers!r})
finally:
    del {name}
"""


def kernel_code(body: str, *, helpers: str, out: str, seed: int, saved: str | None = None) -> str:
    """The code the kernel runs for one export or reload `body` (see EXPORTS above): one
    function under a name drawn for this call, called and deleted, error or not, so it leaves
    no name behind; sent compressed and encoded, so that a rewriting rule a submission installs
    in its kernel finds nothing of it to match."""
    name = f"_g{secrets.token_hex(8)}"
    source = _WRAPPER.format(name=name, body=textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8),
                             out=str(out), seed=int(seed), saved=None if saved is None else str(saved),
                             helpers=helpers)
    blob = base64.b64encode(zlib.compress(source.encode())).decode()
    return (f"exec(__import__('zlib').decompress(__import__('base64').b64decode('{blob}'))"
            f".decode(), globals())")


# Reading what an export wrote: untrusted files, safe loaders only, bounded size.
def read_arrays(path: Path, limit: int = MAX_CHECKED_FILE) -> tuple[dict[str, np.ndarray] | None, str]:
    """A safetensors file's arrays and "", or None and why not (missing, too large, malformed)."""
    from safetensors.numpy import load_file

    if not path.is_file():
        return None, f"{path.name} was not written (the export stopped earlier)"
    if path.stat().st_size > limit:
        return None, f"{path.name} is too large"
    try:
        return load_file(str(path)), ""
    except Exception as err:  # noqa: BLE001  (malformed: a failed check, not a crash)
        return None, f"{path.name} cannot be read ({type(err).__name__})"


def read_json(path: Path, expect: type = object, limit: int = 1 << 20) -> tuple[object | None, str]:
    """A JSON file's value (of type `expect`) and "", or None and why not (missing, too large,
    malformed, another type)."""
    if not path.is_file():
        return None, f"{path.name} was not written (the export stopped earlier)"
    if path.stat().st_size > limit:
        return None, f"{path.name} is too large"
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"{path.name} cannot be read ({type(err).__name__})"
    if not isinstance(value, expect):
        return None, f"{path.name} does not hold a JSON {'object' if expect is dict else expect.__name__}"
    return value, ""


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
