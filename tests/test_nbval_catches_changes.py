"""The notebook tests can fail.

Two halves: (1) with this repository's pytest configuration, nbval compares every stored
output strictly, so a notebook whose stored output differs from a fresh run fails (shown on
a two-cell notebook, beside an unchanged one that passes); (2) no committed notebook opts out
of that comparison, except cells that say why on the line after their nbval marker.
"""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from conftest import ROOT, committed_notebooks

MARKER = re.compile(r"^\s*#\s*(NBVAL_\w+)")


def _notebook(stored: str) -> nbformat.NotebookNode:
    cells = [new_code_cell("x = 6 * 7", execution_count=1),
             new_code_cell("print(x)", execution_count=2,
                           outputs=[new_output("stream", name="stdout", text=stored)])]
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "d2l-io", "display_name": "d2l-io", "language": "python"}})


def test_a_stale_output_fails_with_this_configuration(tmp_path, notebook_env):
    nbformat.write(_notebook("42\n"), tmp_path / "fresh.ipynb")
    nbformat.write(_notebook("41\n"), tmp_path / "stale.ipynb")  # as a notebook left stale
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-q", str(tmp_path)],
        cwd=tmp_path, env=notebook_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert re.search(r"FAILED \S*stale\.ipynb::Cell 1", proc.stdout), proc.stdout[-3000:]
    assert "1 failed, 3 passed" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.parametrize("ipynb", committed_notebooks(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_exemption_says_why(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    workbook = ipynb.stem == "exercises" and ipynb.parent.parent.name == "notebooks"
    for i, cell in enumerate(nb.cells):
        tags = [t for t in cell.metadata.get("tags", []) if t.startswith(("nbval", "raises"))]
        if workbook and cell.metadata.get("nbgrader", {}).get("solution"):
            # Student workbooks are not run by nbval; there the tag lets JupyterLab's Run All go
            # past an answer not written yet (grading.workbooks.tag_answers).
            tags = [t for t in tags if t != "raises-exception"]
        assert not tags, (
            f"{ipynb.relative_to(ROOT)} cell {i}: an nbval tag (use a marker comment with a reason)")
        lines = cell.source.splitlines()
        for j, line in enumerate(lines):
            if MARKER.match(line):
                assert ipynb.stem != "read-write", f"{ipynb.relative_to(ROOT)}: walkthroughs are compared in full"
                reason = lines[j + 1].strip() if j + 1 < len(lines) else ""
                assert reason.startswith("# ("), (
                    f"{ipynb.relative_to(ROOT)} cell {i}: {MARKER.match(line)[1]} without a "
                    "'# (reason)' line after it")
