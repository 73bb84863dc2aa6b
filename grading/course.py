"""The course as nbgrader sees it: where things are and how notebooks are executed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
WORKBOOKS = REPO / "notebooks"
COURSE = REPO / "course"
NOTEBOOK = "exercises"

# Limits for untrusted code (per cell): seconds, and bytes of output kept; memory and process
# limits are in grading.sandbox.
CELL_TIMEOUT = 60
OUTPUT_LIMIT = 1_000_000


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
    c.CourseDirectory.course_id = "d2l-io"
    # Only the notebook is part of an assignment: the solutions' .py twins hold the solutions
    # in plain text and must never be copied into a release or a feedback folder.
    c.CourseDirectory.include = [f"{NOTEBOOK}.ipynb"]
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]


def points(notebook: Path) -> dict[str, float]:
    """grade_id -> points of every autograded test cell of a source notebook."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            found[meta["grade_id"]] = float(meta.get("points", 0))
    return found
