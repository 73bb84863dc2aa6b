"""`python -m grading grade` on a fixture class: expected scores, feedback, nothing touched.

Two students hand in all four assignments: "correct" (the solutions, full marks) and
"untouched" (the student workbooks as released, zero). The others hand in the PyTorch
assignment: a partly correct one, and one submission for each hostile kind: an endless loop,
a kernel that exits, an error in every cell, endless printing, and a vandal that deletes its
own files and tries to read and change the solutions, the gradebook and another student's
submission.
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

from conftest import FRAMEWORKS, ROOT

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


def _with_first_cell(code, notebook=SOLUTION):
    nb = nbformat.read(notebook, as_version=4)
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
        "partial": _stub_solutions(nbformat.read(SOLUTION, as_version=4), {"pytorch-ex3-export"}),
        "loops": _with_first_cell("while True:\n    pass"),
        "exits": _with_first_cell("import os\nos._exit(1)"),
        "raises": raising,
        "prints": _with_first_cell("while True:\n    print('spam ' * 200)"),
        "vandal": _with_first_cell(VANDAL.format(
            solutions=str(SOLUTION), gradebook=str(course / "gradebook.db"), other=str(other)),
            WORKBOOK),
    }
    for fw in FRAMEWORKS:
        fixtures[("correct", fw)] = nbformat.read(ROOT / "solutions" / fw / "exercises.ipynb", as_version=4)
        fixtures[("untouched", fw)] = nbformat.read(ROOT / "notebooks" / fw / "exercises.ipynb", as_version=4)
    for key, nb in fixtures.items():
        student, assignment = key if isinstance(key, tuple) else (key, ASSIGNMENT)
        folder = subs / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "exercises.ipynb")
        (folder / "notes.txt").write_text(f"{student}'s own file\n")
    before = {"solutions": _digest(ROOT / "solutions"), "submitted": _digest(subs)}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "grading", "grade", str(subs), "--course", str(course),
                           "--jobs", "2", "--timeout", "30"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    return {"proc": proc, "course": course, "subs": subs, "before": before}


EXPECTED = {("partial", ASSIGNMENT): 6, ("loops", ASSIGNMENT): 10, ("exits", ASSIGNMENT): 0,
            ("raises", ASSIGNMENT): 0, ("prints", ASSIGNMENT): 10, ("vandal", ASSIGNMENT): 0}
for _fw in FRAMEWORKS:
    EXPECTED[("correct", _fw)] = 10
    EXPECTED[("untouched", _fw)] = 0


def test_batch_completes_with_expected_scores(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "submission" in proc.stderr  # the progress bar (tqdm writes to stderr)
    with open(graded["course"] / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    # nbgrader's export has a row for every student and assignment; those not handed in score 0
    scores = {(r["student_id"], r["assignment"]): float(r["score"]) for r in rows}
    assert len(rows) == len(scores) == len({s for s, _ in EXPECTED}) * len(FRAMEWORKS)
    assert {k: v for k, v in scores.items() if k in EXPECTED} == {k: float(v) for k, v in EXPECTED.items()}
    assert {float(r["max_score"]) for r in rows} == {10.0}


def test_feedback_gives_reasons_and_hides_hidden_tests(graded):
    feedback = graded["course"] / "feedback"
    pages = {s: (feedback / s / a / "exercises.html").read_text() for s, a in EXPECTED}
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
        assert len(gb.assignment_submissions(ASSIGNMENT)) == sum(a == ASSIGNMENT for _, a in EXPECTED)
        assert gb.find_submission(ASSIGNMENT, "correct").score == 10
