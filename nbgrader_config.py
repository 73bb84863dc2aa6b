"""nbgrader configuration of this course (read by every `nbgrader` command run from here).

The solutions are nbgrader's source (solutions/<framework>/exercises.ipynb, one assignment per
framework); everything nbgrader writes (gradebook, release, submitted, autograded, feedback,
and the exchange) goes to course/, which git ignores. `python -m grading` reads this file too
(late penalties, roster), with its own folders. nbgrader's autograde is turned off: grade with
`make grade` (see README, "Running a course").
"""

from pathlib import Path

from grading.course import configure  # installed with the project, like d2l_utils

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
configure(c, root=Path(__file__).resolve().parent / "course")

# Course settings an instructor may change (README, "Running a course"):
# c.Exchange.root = "/srv/nbgrader/exchange"      # a JupyterHub's shared exchange
# c.LateSubmissionPlugin.penalty_method = "zero"  # late work scores 0 ("none": no penalty)
# c.Autograde.create_student = False              # grade only students in the roster
