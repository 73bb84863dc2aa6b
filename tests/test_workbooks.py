"""Student workbooks: generated from the solutions, up to date, free of solution text, gradable."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from conftest import FRAMEWORKS, ROOT

SOLVED = [fw for fw in FRAMEWORKS if (ROOT / "solutions" / fw / "exercises.ipynb").exists()]
REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def test_every_framework_has_solutions():
    assert SOLVED == list(FRAMEWORKS)


def test_workbooks_are_up_to_date():
    from grading.workbooks import stale

    assert stale() == [], "stale student workbooks: run `make workbooks`"


def _hidden_lines(solution: nbformat.NotebookNode) -> set[str]:
    """Lines that only solutions and hidden tests contain (not set-up code a student also sees)."""
    inside, outside = set(), set()
    for cell in solution.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            inside |= {l.strip() for l in cell.source.splitlines()}
            continue
        regions = REGION.findall(cell.source)
        for _, body in regions:
            inside |= {l.strip() for l in body.splitlines()}
        outside |= {l.strip() for l in REGION.sub("", cell.source).splitlines()}
    # Very short lines ("else:", ")") say nothing about a solution.
    return {l for l in inside - outside if len(l) > 8}


@pytest.mark.parametrize("framework", SOLVED)
def test_workbook_has_no_solution_text(framework):
    solution = nbformat.read(ROOT / "solutions" / framework / "exercises.ipynb", as_version=4)
    secret = _hidden_lines(solution)
    assert secret, "the solution notebook has no solution regions"
    folder = ROOT / "notebooks" / framework
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
        "exercises.ipynb", "exercises.py", "read-write.ipynb", "read-write.py"]
    for name in ("exercises.ipynb", "exercises.py"):
        text = (folder / name).read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        leaked = sorted(l for l in secret if l in text)
        assert not leaked, f"{name} contains solution lines: {leaked[:5]}"
    workbook = nbformat.read(folder / "exercises.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in workbook.cells if c.cell_type == "code")


@pytest.mark.parametrize("framework", SOLVED)
def test_ten_points_in_tests_only(framework):
    """Autograded cells carry 10 points; prose answers are read by the instructor (0 points).
    tests/test_grading_fair.py grades other correct answers to every assignment (full marks)
    and partial ones (partial marks)."""
    solution = nbformat.read(ROOT / "solutions" / framework / "exercises.ipynb", as_version=4)
    graded = [c.metadata.nbgrader for c in solution.cells
              if c.metadata.get("nbgrader", {}).get("grade")]
    tests = [m for m in graded if not m.get("solution")]
    assert sum(m["points"] for m in tests) == 10 and len(tests) >= 3
    assert all(m["points"] == 0 for m in graded if m.get("solution"))
    assert all(m["grade_id"].startswith(framework + "-") for m in graded)
