"""Every notebook is a jupytext pair, and the two halves agree."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from conftest import FRAMEWORKS, ROOT, committed_notebooks

NOTEBOOKS = committed_notebooks()


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in nb.cells]


def test_there_are_notebooks():
    walkthroughs = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    for fw in FRAMEWORKS:
        assert f"notebooks/{fw}/read-write.ipynb" in walkthroughs


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_py_twin_matches_ipynb(ipynb: Path):
    twin = ipynb.with_suffix(".py")
    assert twin.exists(), f"{twin.relative_to(ROOT)} is missing: run `make sync`"
    from_ipynb = _cells(jupytext.read(ipynb))
    from_py = _cells(jupytext.read(twin, fmt="py:percent"))
    assert from_py == from_ipynb, (
        f"{ipynb.relative_to(ROOT)} and its .py twin disagree: edit one, then run `make sync`"
    )


# Student workbooks are stored without outputs (nbgrader clears them); tests/test_workbooks.py.
EXECUTED = [p for p in NOTEBOOKS if not (p.parent.parent.name == "notebooks" and p.stem == "exercises")]


@pytest.mark.parametrize("ipynb", EXECUTED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_code_cell_was_executed_in_order(ipynb: Path):
    """Stored outputs come from one fresh top-to-bottom run, not from cells run by hand."""
    nb = nbformat.read(ipynb, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))


def test_every_py_twin_has_a_notebook():
    """A .py in py:percent form (it has `# %%` cells) is a twin; other .py files there are
    scripts a notebook runs and shows (notebooks/sharded/)."""
    twins = 0
    for top in ("notebooks", "solutions"):
        for py in (ROOT / top).rglob("*.py"):
            if ".ipynb_checkpoints" in py.parts or not re.search(r"^# %%", py.read_text(), re.M):
                continue
            twins += 1
            assert py.with_suffix(".ipynb").exists(), f"{py.relative_to(ROOT)} has no .ipynb twin"
    assert twins == len(NOTEBOOKS)


RUN_DEPENDENT = {"execution", "ExecuteTime", "collapsed", "scrolled"}


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_run_dependent_metadata(ipynb: Path):
    """No timestamps or view state in committed notebooks, and each cell's printed text is one
    stream however the kernel flushed it (`make execute` stores them so): a re-run that
    prints the same changes nothing in git."""
    nb = nbformat.read(ipynb, as_version=4)
    for i, cell in enumerate(nb.cells):
        found = RUN_DEPENDENT & set(cell.metadata)
        assert not found, f"{ipynb.relative_to(ROOT)} cell {i} has run-dependent metadata {found}"
        streams = [o.get("name") for o in cell.get("outputs", []) if o.output_type == "stream"]
        kinds = [o.output_type + o.get("name", "") for o in cell.get("outputs", [])]
        assert all(a != b for a, b in zip(kinds, kinds[1:]) if a.startswith("stream")), (
            f"{ipynb.relative_to(ROOT)} cell {i}: consecutive {streams} outputs not coalesced")
