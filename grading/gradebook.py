"""Merge one submission's grades from a worker's private gradebook into the course gradebook.

nbgrader's gradebook is one SQLite file, and SQLite lets one writer at a time: parallel
`nbgrader autograde` processes on one file wait for each other's locks or fail with
"database is locked". So each worker grades into its own copy of the course gradebook, made
before the batch started (same assignment, notebooks, cells and students, hence the same ids),
and only the grading process writes the course gradebook: it copies the worker's rows of that
one submission (submitted_assignment, submitted_notebook, grade, comment) in one transaction,
replacing that student's previous grades for that assignment. A crash between merges loses
nothing already merged; a merge is all or nothing; the UNIQUE(assignment, student) constraint
makes a duplicate impossible.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_TABLES = ("submitted_assignment", "submitted_notebook", "grade", "comment")


def _rows(prefix: str) -> dict[str, str]:
    """WHERE clauses selecting one submission's rows in the database named `prefix`."""
    sa = (f"SELECT sa.id FROM {prefix}.submitted_assignment sa JOIN {prefix}.assignment a "
          f"ON sa.assignment_id = a.id WHERE a.name = :assignment AND sa.student_id = :student")
    sn = f"SELECT id FROM {prefix}.submitted_notebook WHERE assignment_id IN ({sa})"
    return {"submitted_assignment": f"id IN ({sa})",
            "submitted_notebook": f"assignment_id IN ({sa})",
            "grade": f"notebook_id IN ({sn})",
            "comment": f"notebook_id IN ({sn})"}


def merge_submission(course_db: Path, worker_db: Path, assignment: str, student: str) -> int:
    """Copy one submission's grades from worker_db into course_db; return the grade rows copied."""
    con = sqlite3.connect(course_db, timeout=60, isolation_level=None)
    try:
        con.execute("ATTACH DATABASE ? AS w", (str(worker_db),))
        args = {"assignment": assignment, "student": student}
        ours, theirs = _rows("main"), _rows("w")
        con.execute("BEGIN IMMEDIATE")
        try:
            found = con.execute(f"SELECT COUNT(*) FROM w.grade WHERE {theirs['grade']}", args).fetchone()[0]
            if not found:
                raise LookupError(f"{worker_db}: no grades for {student}/{assignment}")
            for table in reversed(_TABLES):  # children first
                con.execute(f"DELETE FROM main.{table} WHERE {ours[table]}", args)
            for table in _TABLES:  # parents first
                con.execute(f"INSERT INTO main.{table} SELECT * FROM w.{table} WHERE {theirs[table]}", args)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return found
    finally:
        con.close()
