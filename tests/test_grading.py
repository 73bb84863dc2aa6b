"""`python -m grading grade` on a fixture class: expected scores, feedback, nothing touched.

The class is built from the PyTorch assignment: a correct submission (the solution), the
untouched student workbook, a partly correct one, and one submission for each hostile kind:
an endless loop, a kernel that exits, an error in every cell, endless printing, and a
vandal that deletes its own files and tries to read and change the solutions, the gradebook
and another student's submission.
"""

from __future__ import annotations

import csv
import html
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from conftest import ROOT

ASSIGNMENT = "pytorch"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / "exercises.ipynb"
WORKBOOK = ROOT / "notebooks" / ASSIGNMENT / "exercises.ipynb"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"

VANDAL = """
import os, pathlib
report = []
for f in os.listdir("."):
    os.remove(f)
targets = [{solutions!r}, {gradebook!r}, {other!r}]
for t in targets:
    try:
        report.append((t, "read", len(pathlib.Path(t).read_bytes())))
    except Exception as e:
        report.append((t, "read refused", type(e).__name__))
    try:
        pathlib.Path(t).write_text("vandalised")
        report.append((t, "WRITTEN"))
    except Exception as e:
        report.append((t, "write refused", type(e).__name__))
print(report)
"""


def _stub_solutions(nb, grade_ids):
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") in grade_ids:
            cell.source = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", STUB, cell.source, flags=re.S)
    return nb


def _with_first_cell(code):
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.cells.insert(1, new_code_cell(code))
    return nb


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("class")
    subs, course = base / "submitted", base / "course"
    solution = nbformat.read(SOLUTION, as_version=4)
    raising = nbformat.read(SOLUTION, as_version=4)
    for cell in raising.cells:
        if cell.cell_type == "code":
            cell.source = "raise RuntimeError('every cell fails')\n" + cell.source
    other = subs / "correct" / ASSIGNMENT / "exercises.ipynb"
    fixtures = {
        "correct": solution,
        "untouched": nbformat.read(WORKBOOK, as_version=4),
        "partial": _stub_solutions(nbformat.read(SOLUTION, as_version=4), {"pytorch-ex3-export"}),
        "loops": _with_first_cell("while True:\n    pass"),
        "exits": _with_first_cell("import os\nos._exit(1)"),
        "raises": raising,
        "prints": _with_first_cell("while True:\n    print('spam ' * 200)"),
        "vandal": _with_first_cell(VANDAL.format(
            solutions=str(SOLUTION), gradebook=str(course / "gradebook.db"), other=str(other))),
    }
    for student, nb in fixtures.items():
        folder = subs / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "exercises.ipynb")
        (folder / "notes.txt").write_text(f"{student}'s own file\n")
    before = {"solutions": _digest(ROOT / "solutions"), "submitted": _digest(subs)}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "grading", "grade", str(subs), "--course", str(course),
                           "--jobs", "2", "--timeout", "30"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    return {"proc": proc, "course": course, "subs": subs, "before": before}


EXPECTED = {"correct": 10, "untouched": 0, "partial": 6, "loops": 10, "exits": 0, "raises": 0,
            "prints": 10, "vandal": 10}


def test_batch_completes_with_expected_scores(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "submission" in proc.stderr  # the progress bar (tqdm writes to stderr)
    with open(graded["course"] / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["student_id"] for r in rows) == sorted(EXPECTED)  # one row each, none lost
    scores = {r["student_id"]: float(r["score"]) for r in rows}
    assert scores == {k: float(v) for k, v in EXPECTED.items()}
    assert {float(r["max_score"]) for r in rows} == {10.0}


def test_feedback_gives_reasons_and_hides_hidden_tests(graded):
    feedback = graded["course"] / "feedback"
    pages = {s: (feedback / s / ASSIGNMENT / "exercises.html").read_text() for s in EXPECTED}
    assert "CellTimeoutError" in pages["loops"]
    assert "KernelDied" in pages["exits"]
    assert "output truncated" in pages["prints"]
    assert "every cell fails" in pages["raises"]
    for page in pages.values():
        assert "BEGIN HIDDEN TESTS" not in page
        assert 'state["optimizer"]["state"]' not in page  # a hidden test's code


def test_vandal_changed_nothing(graded):
    page = (graded["course"] / "feedback" / "vandal" / ASSIGNMENT / "exercises.html").read_text()
    printed = html.unescape(page)  # the report is printed with single quotes, the code has double
    assert "'WRITTEN'" not in printed
    assert printed.count("'write refused'") == 3 and printed.count("'read refused'") >= 2
    assert _digest(ROOT / "solutions") == graded["before"]["solutions"]
    assert _digest(graded["subs"]) == graded["before"]["submitted"]  # graded on copies
    from nbgrader.api import Gradebook

    env_path = str(Path(sys.executable).parent)
    os.environ["PATH"] = env_path + os.pathsep + os.environ["PATH"]  # nbgrader calls alembic
    with Gradebook(f"sqlite:///{graded['course'] / 'gradebook.db'}") as gb:
        assert len(gb.assignment_submissions(ASSIGNMENT)) == len(EXPECTED)
        assert gb.find_submission(ASSIGNMENT, "correct").score == 10
