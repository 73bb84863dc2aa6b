"""The course as nbgrader sees it: where things are and how notebooks are executed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
WORKBOOKS = REPO / "notebooks"
COURSE = REPO / "course"
TEMPLATES = Path(__file__).resolve().parent / "templates"  # nbconvert templates of the course
NOTEBOOK = "exercises"
COURSE_ID = "d2l-io"  # nbgrader's course id: the exchange's folder, the gradebook's course


def put_alembic_on_path() -> None:
    """nbgrader runs `alembic` (its database migrations) from PATH: use this environment's."""
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def configure(c, root: Path, *, source: Path = SOLUTIONS) -> None:
    """Fill an nbgrader traitlets Config `c` for a course rooted at `root`."""
    root = Path(root)
    c.CourseDirectory.root = str(root)
    # nbgrader joins root and these; an absolute path is kept as is.
    c.CourseDirectory.source_directory = str(source)
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.CourseDirectory.course_id = COURSE_ID
    # Only the notebook is part of an assignment: the solutions' .py twins hold the solutions
    # in plain text and must never be copied into a release or a feedback folder. nbgrader's
    # own files of a submission (its time, the secret its feedback is released under) travel
    # with it through collect.
    c.CourseDirectory.include = [f"{NOTEBOOK}.ipynb", "timestamp.txt", "submission_secret.txt"]
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]
    # The exchange (release, submit, collect, feedback): a folder, as JupyterHub's default
    # exchange is; on a shared hub, set c.Exchange.root after this call (see README).
    c.Exchange.root = str(root / "exchange")
    # One grader: nbgrader's own autograde (formgrader's Autograde button, `nbgrader
    # autograde`) would run hidden tests in the student's kernel; it refuses instead.
    from grading.refuse import RefuseAutograde

    c.Autograde.exporter_class = RefuseAutograde


def load_config(course: Path, source: Path = SOLUTIONS):
    """The course's nbgrader configuration as every nbgrader command run from the repository
    reads it (nbgrader_config.py here and in the course folder: late penalties, roster
    settings, ...), with its folders at `course` and `source`."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    c = Config()
    # As nbgrader reads them: the repository's file, then one in the course folder, if any.
    for folder in dict.fromkeys([REPO, Path(course)]):
        if (folder / "nbgrader_config.py").is_file():
            c.merge(PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config())
    configure(c, root=course, source=source)
    return c


def points(notebook: Path, written: bool = False) -> dict[str, float]:
    """grade_id -> points of every autograded test cell of a source notebook; with `written`,
    of the written answers (graded by hand) too."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and (cell.cell_type == "code" or written):
            found[meta["grade_id"]] = float(meta.get("points", 0))
    return found
