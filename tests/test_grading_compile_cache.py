"""JAX's compiled code, warmed once per worker by the solution's run, reaches every graded
kernel as a private copy: what a submission writes there stays in its own sandbox.

The warm cache here is a stand-in (two files): the promise is about copies, not compiled
code. The notebook reads its cache folder, then overwrites every entry and plants a file,
as a submission trying to reach the next one would."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import pytest

from grading import sandbox
from grading.engine import sandbox_env
from grading.submission import grade_one

pytestmark = pytest.mark.slow  # two sandboxed kernels

VANDAL = """\
import os, pathlib
cache = pathlib.Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
print("found:", sorted(p.name for p in cache.iterdir()))
for p in cache.iterdir():
    p.write_bytes(b"vandalised")
(cache / "planted").write_text("for the next submission")
"""


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_each_kernel_gets_its_own_copy_of_the_warm_cache(tmp_path):
    why = sandbox.check_available()
    if why:
        pytest.skip(why)
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "entry-a").write_bytes(b"compiled a")
    (warm / "entry-b").write_bytes(b"compiled b")
    before = _digest(warm)
    refs = tmp_path / "refs"
    refs.mkdir()
    env = sandbox_env(threads=1)
    seen = []
    for student in ("first", "second"):
        submitted = tmp_path / student
        submitted.mkdir()
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(VANDAL)])
        nb.metadata["kernelspec"] = {"name": "d2l-io", "display_name": "d2l-io", "language": "python"}
        nbformat.write(nb, submitted / "exercises.ipynb")
        graded = grade_one(student, "jax", submitted, tmp_path / f"work-{student}", refs, 0,
                           env=env, compile_cache=warm)
        executed = nbformat.read(graded.notebook, 4)
        seen.append("".join(o.get("text", "") for o in executed.cells[0].outputs))
    # Each kernel found the warm entries and nothing another one planted or changed...
    assert seen == ["found: ['entry-a', 'entry-b']\n"] * 2, seen
    # ...and the worker's warm cache is as it was.
    assert _digest(warm) == before
