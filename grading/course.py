"""The course as nbgrader sees it: where things are and how notebooks are executed."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
WORKBOOKS = REPO / "notebooks"
COURSE = REPO / "course"
ASSIGNMENTS = ("mxnet", "pytorch", "tensorflow", "jax")
NOTEBOOK = "exercises"

# Limits for untrusted code (per cell): seconds, and bytes of output kept.
CELL_TIMEOUT = 60
OUTPUT_LIMIT = 1_000_000


def configure(c, root: Path, *, timeout: int = CELL_TIMEOUT, output_limit: int = OUTPUT_LIMIT,
              kernel_name: str | None = None, source: Path = SOLUTIONS) -> None:
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
    c.Execute.timeout = timeout
    c.Execute.interrupt_on_timeout = True
    # On a loaded machine (k kernels on k cores) a kernel's output can trail its reply by
    # seconds; nbgrader's default then fails the whole notebook. Wait longer, and never fail a
    # notebook for late output.
    c.Execute.iopub_timeout = 30
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.startup_timeout = 180
    c.LimitOutput.max_lines = 200
    c.LimitOutput.max_traceback = 50
    # Our Execute: caps the output a cell may produce while it runs and grades a notebook whose
    # kernel died (the cells it could not run score zero, with the reason in the feedback).
    from nbgrader.converters.autograde import Autograde

    from grading.preprocessors import GuardedExecute, HideHiddenTests

    c.GuardedExecute.output_limit = output_limit
    if kernel_name:
        c.GuardedExecute.kernel_name = kernel_name
    c.Autograde.autograde_preprocessors = [
        GuardedExecute if pp.__name__ == "Execute" else pp
        for pp in Autograde().autograde_preprocessors
    ]
    from nbgrader.converters.generate_feedback import GenerateFeedback

    c.GenerateFeedback.preprocessors = [HideHiddenTests, *GenerateFeedback().preprocessors]
