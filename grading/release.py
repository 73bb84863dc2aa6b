"""The release as students get it: the committed workbook, not nbgrader's raw release.

`nbgrader generate_assignment` writes course/release/<assignment>/exercises.ipynb from the
solutions, and updates the gradebook (the assignment, its graded cells and points). The
workbook students should get is the committed one, notebooks/<assignment>/exercises.ipynb:
the same cells, plus JupyterLab's `raises-exception` tags on the answer cells and the form
JupyterLab saves (grading.workbooks). `generate` runs nbgrader's step, then puts the committed
workbook in its place, after checking that it is what nbgrader generates from the solutions
now (a stale workbook is refused). `nbgrader release_assignment` then copies that folder to
the exchange, as in any nbgrader course.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from grading.course import NOTEBOOK, SOLUTIONS, WORKBOOKS


def generate(assignment: str, course: Path, source: Path = SOLUTIONS,
             workbooks: Path = WORKBOOKS) -> Path:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from grading.course import load_config, put_alembic_on_path
    from grading.grade import prepare_course

    if not (source / assignment / f"{NOTEBOOK}.ipynb").is_file():
        raise SystemExit(f"{source / assignment / (NOTEBOOK + '.ipynb')}: no such assignment")
    prepare_course(course, {assignment}, source=source)
    put_alembic_on_path()
    c = load_config(course, source)
    c.Application.log_level = "WARN"
    made = NbGraderAPI(CourseDirectory(config=c), config=c).generate_assignment(
        assignment, force=True, create=True)
    if not made["success"]:
        raise SystemExit(f"nbgrader could not generate {assignment}: {made['error']}")
    released = course / "release" / assignment / f"{NOTEBOOK}.ipynb"
    committed = workbooks / assignment / f"{NOTEBOOK}.ipynb"
    if committed.is_file() and source.resolve() == SOLUTIONS.resolve():
        from grading.workbooks import stale

        if stale([assignment]):
            raise SystemExit(f"{committed}: out of date with {source / assignment}; run `make "
                             f"workbooks` first")
        shutil.copyfile(committed, released)
    return released
