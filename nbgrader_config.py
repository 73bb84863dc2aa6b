"""nbgrader configuration of this course (read by every `nbgrader` command run from here).

The solutions are nbgrader's source (solutions/<framework>/exercises.ipynb, one assignment per
framework); everything nbgrader writes (gradebook, release, submitted, autograded, feedback)
goes to course/, which git ignores. `python -m grading` uses the same settings.
"""

from pathlib import Path

from grading.course import configure  # installed with the project, like d2l_utils

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
configure(c, root=Path(__file__).resolve().parent / "course")
