"""Student workbooks: generated from the solutions, up to date, free of solution text, gradable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from conftest import FRAMEWORKS, ROOT
from helpers.solutions import hidden_lines

SOLVED = [fw for fw in FRAMEWORKS if (ROOT / "solutions" / fw / "exercises.ipynb").exists()]


def test_every_framework_has_solutions():
    assert SOLVED == list(FRAMEWORKS)


def test_workbooks_are_up_to_date():
    from grading.workbooks import stale

    assert stale() == [], "stale student workbooks: run `make workbooks`"


@pytest.mark.parametrize("framework", SOLVED)
def test_workbook_has_no_solution_text(framework):
    solution = nbformat.read(ROOT / "solutions" / framework / "exercises.ipynb", as_version=4)
    secret = hidden_lines(solution)
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


# An unanswered exercise must stop only its own cells. The model of a run: an answer cell left
# as its placeholder raises at once, so nothing it would define exists; every later statement
# that reads one of those names (or a file name written only after it) fails too, and so does
# the rest of its cell. Names read and written are Python names and string literals that look
# like file names ("mlp-pickled.pt"): files are how cells hand work on in these notebooks.
_FILE = re.compile(r"[\w.-]+\.\w+")


def _statements(source: str) -> list[tuple[set[str], set[str], str]]:
    """(names written, names read, first line) for each top-level statement of a cell."""
    code = "\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!")))
    out = []
    for st in ast.parse(code).body:
        written, read = set(), set()
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            written.add(st.name)  # names bound inside a function are its own
        for node in ast.walk(st):
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load):
                    read.add(node.id)
                elif not isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    written.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                written |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _FILE.fullmatch(node.value):
                written.add("file:" + node.value)
                read.add("file:" + node.value)
        out.append((written, read, ast.unparse(st).splitlines()[0][:60]))
    return out


def _cascades(workbook, solution) -> list[str]:
    """Statements of other exercises that an unanswered exercise stops, and statements that run
    only after an answer although they do not need it (demonstrations behind a placeholder)."""
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    cells, exercise = [], 0
    for i, cell in enumerate(workbook.cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if m := re.search(r"-ex(\d+)-", gid):
            exercise = int(m.group(1))
        if cell.cell_type == "code":
            cells.append((i, exercise, gid in answers, _statements(answers.get(gid, cell.source))))
    found = []
    for unanswered in sorted({ex for _, ex, is_answer, _ in cells if is_answer}):
        missing: set[str] = set()
        for i, ex, is_answer, statements in cells:
            stopped = is_answer and ex == unanswered
            for written, read, line in statements:
                needs = read & missing
                if needs and not stopped and ex != unanswered:
                    found.append(f"cell {i} (exercise {ex}) `{line}` needs {sorted(needs)} "
                                 f"of exercise {unanswered}")
                if stopped and not needs and not (is_answer and ex == unanswered):
                    later = _read_before_written(cells, i)
                    if written & later:
                        found.append(f"cell {i} `{line}` runs only once exercise {unanswered} is "
                                     f"answered, but later cells need {sorted(written & later)}")
                if stopped or needs:
                    stopped = True
                    missing |= written
                else:
                    missing -= written
    return found


def _read_before_written(cells, index: int) -> set[str]:
    """Names that cells after cell `index` read before anything writes them."""
    read, written = set(), set()
    for i, _, _, statements in cells:
        for w, r, _ in statements:
            if i > index:
                read |= r - written
                written |= w
    return read


@pytest.mark.parametrize("framework", SOLVED)
def test_an_unanswered_exercise_stops_only_its_own_cells(framework):
    """JupyterLab's Run All goes past a placeholder (raises-exception tag), and no cell of
    another exercise, nor any demonstration, waits on an answer it does not use."""
    workbook = nbformat.read(ROOT / "notebooks" / framework / "exercises.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / framework / "exercises.ipynb", as_version=4)
    placeholders = [c for c in workbook.cells if c.cell_type == "code"
                    and c.metadata.get("nbgrader", {}).get("solution")]
    assert placeholders and all("raise NotImplementedError()" in c.source for c in placeholders)
    assert all("raises-exception" in c.metadata.get("tags", []) for c in placeholders)
    assert _cascades(workbook, solution) == []


def test_the_cascade_check_can_fail():
    """The check above, on the two faults this workbook once had: a demonstration after the call
    to an answer in one cell, and an exercise reading a name the previous exercise's cells set."""
    from nbformat.v4 import new_code_cell, new_notebook

    def answer(gid, source):
        return new_code_cell(source, metadata={"nbgrader": {"grade_id": gid, "solution": True}})

    solution = new_notebook(cells=[
        new_code_cell("import torch\nmodel = torch.nn.Linear(2, 2)"),
        answer("x-ex1-a", "def save(m, p):\n    torch.save(m.state_dict(), p)"),
        new_code_cell("save(model, 'mlp.params')\ntorch.save(model, 'mlp-pickled.pt')\nn = 3"),
        answer("x-ex2-a", "def export(m, p):\n    pass"),
        new_code_cell("export(model, 'mlp.pt2')"),
        new_code_cell("torch.load('mlp-pickled.pt')\nprint(n)"),
    ])
    workbook = nbformat.from_dict(solution)
    found = _cascades(workbook, solution)
    assert any("torch.save(model, 'mlp-pickled.pt')" in f for f in found), found
    assert any("n = 3" in f for f in found), found
    assert any("cell 5 (exercise 2)" in f and "mlp-pickled.pt" in f for f in found), found
    assert len(found) == 3, found
