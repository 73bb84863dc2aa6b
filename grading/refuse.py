"""nbgrader's autograde, turned off: one grader for the course.

`nbgrader autograde` and formgrader's Autograde button run every cell, hidden tests included,
in the student's own kernel and read the verdict from its outputs, which the student's code
controls. In this course they refuse with a message naming the grader to use. The refusal is
nbgrader's Autograde.exporter_class (grading.course.configure sets it): nbgrader builds the
exporter after it has looked for the submission's notebook (in course/submitted/) and before
it writes any file or opens the gradebook, so refusing there changes nothing. Where there is no
submission to find, nbgrader stops earlier with its own message, "No notebooks were matched".
"""

from __future__ import annotations

from nbconvert.exporters import NotebookExporter
from nbgrader.converters.base import NbGraderException

GRADE_COMMAND = "make grade (python -m grading grade course/submitted)"
MESSAGE = (f"nbgrader's autograde is turned off in this course: it would run the hidden tests in "
           f"the student's own kernel, where the student's code decides the outcome. Grade with "
           f"{GRADE_COMMAND}: it runs each submission in a sandbox and checks it in a separate "
           f"process, and formgrader then shows its grades.")


class RefuseAutograde(NotebookExporter):
    def __init__(self, *args, parent=None, **kwargs):
        # nbgrader's autograde exits without a word on NbGraderException: say it in its log
        # (the terminal, or formgrader's error dialog, which shows the captured log).
        log = getattr(parent, "log", None)
        if log is not None:
            log.error(MESSAGE)
        raise NbGraderException(MESSAGE)
