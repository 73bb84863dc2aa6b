"""Writing grades into nbgrader's gradebook without losing anything an instructor entered.

One transaction per submission records its automatic scores and comments, its timestamp, its
late penalty (nbgrader's configured LateSubmissionPlugin) and this grader's own record of it,
a row of the table `d2l_grading` in the same database file:

* `digest`: what was graded (the submission's files, its assignment's checks and source), so
  that the next run grades only new or changed submissions, and a batch killed at any moment
  grades on from where it stopped: a submission is recorded, with its grade, or not at all;
* `answers`: a hash of each graded cell's answer as graded, so that a regrade can tell which
  hand-given grades were given to an answer that has since changed;
* `feedback`: a hash of the feedback page as written, so that a page an instructor edited by
  hand is never overwritten;
* `runs`: how many times it was recorded.

Instructors' entries are never touched: manual scores, manual comments and extra credit are
kept on every regrade, as `nbgrader autograde` keeps them. Where the answer under a manual
score changed, the score is kept and the cell flagged for review (needs_manual_grade), with a
note in its automatic comment.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from grading.course import COURSE_ID
from grading.files import regular_files
from grading.limits import LOCK_WAIT

TABLE = "d2l_grading"


class GradebookLocked(Exception):
    """The gradebook stayed locked by another program: nothing was recorded."""


@dataclass(frozen=True)
class Late:
    """What recording found about a submission's time: seconds late (0 if on time or without
    a timestamp) and the late penalty nbgrader's plugin gave (None for none)."""

    seconds: float
    penalty: float | None
    flagged: tuple[str, ...]  # grade_ids whose hand-given grade is kept but needs review


@dataclass(frozen=True)
class Recorded:
    """This grader's record of one submission (None where it has none)."""

    digest: str
    answers: dict[str, str]
    feedback: str
    runs: int


def db_url(course: Path) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


def _open(course: Path):
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    # nbgrader's add_submission makes SQLAlchemy warn about its own cascades (harmless).
    warnings.filterwarnings("ignore", category=SAWarning)
    return Gradebook(db_url(course), COURSE_ID)


def _ensure_table(db) -> None:
    from sqlalchemy import text

    db.execute(text(f"CREATE TABLE IF NOT EXISTS {TABLE} (student TEXT NOT NULL, "
                    "assignment TEXT NOT NULL, digest TEXT NOT NULL, answers TEXT NOT NULL, "
                    "feedback TEXT NOT NULL, runs INTEGER NOT NULL, graded_at REAL NOT NULL, "
                    "PRIMARY KEY (student, assignment))"))


def recorded(course: Path, wait: float = LOCK_WAIT) -> dict[tuple[str, str], Recorded]:
    """(student, assignment) -> this grader's record, for every recorded submission."""
    from sqlalchemy import text

    if not (course / "gradebook.db").is_file():
        return {}

    def read():
        with _open(course) as gb:
            _ensure_table(gb.db)
            gb.db.commit()
            return gb.db.execute(text(f"SELECT student, assignment, digest, answers, feedback, "
                                      f"runs FROM {TABLE}")).fetchall()

    rows = patiently(course, read, wait)
    return {(r[0], r[1]): Recorded(r[2], json.loads(r[3]), r[4], r[5]) for r in rows}


def patiently(course: Path, action, wait: float = LOCK_WAIT):
    """`action()`, tried again while another program (formgrader saving a grade) holds the
    gradebook locked; after `wait` seconds, GradebookLocked naming the file. A transaction
    that met the lock was rolled back, so trying again is safe."""
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + wait
    while True:
        try:
            return action()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise GradebookLocked(f"{course / 'gradebook.db'}: locked by another program (a "
                                      f"formgrader saving a grade?) for {wait:g} s") from None
            time.sleep(0.5)


def answer_hashes(notebook: Path | None) -> dict[str, str]:
    """grade_id -> hash of the answer that grade cell grades: the cell itself for a written
    answer, and for a test cell the answer cells (nbgrader "solution") since the previous
    grade cell. {} when the notebook cannot be read."""
    import nbformat

    if notebook is None:
        return {}
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # noqa: BLE001  (an unreadable notebook has no answers to compare)
        return {}
    found, pending = {}, []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not isinstance(meta, dict):
            continue
        if meta.get("solution"):
            pending.append(str(cell.get("source", "")))
        if meta.get("grade") and meta.get("grade_id"):
            text = "\x00".join(pending if cell.cell_type == "code" else [str(cell.source)])
            found[str(meta["grade_id"])] = hashlib.sha256(text.encode()).hexdigest()[:16]
            pending = []
    return found


def record(course: Path, student: str, assignment: str, scores: dict[str, float],
           comments: dict[str, str], *, timestamp: str | None, digest: str,
           answers: dict[str, str], feedback: str, late_plugin=None,
           wait: float = LOCK_WAIT) -> Late:
    """Record one submission's automatic grades in one transaction, keeping every manual
    score, manual comment and extra credit. Raises GradebookLocked if another program holds
    the gradebook locked longer than `wait` seconds."""
    from sqlalchemy import text

    return patiently(course, lambda: _record(course, student, assignment, scores, comments,
                                             timestamp, digest, answers, feedback, late_plugin,
                                             text), wait)


def _record(course, student, assignment, scores, comments, timestamp, digest, answers,
            feedback, late_plugin, text) -> Late:
    with _open(course) as gb:
        _ensure_table(gb.db)
        before = gb.db.execute(text(f"SELECT answers, runs FROM {TABLE} WHERE student = :s AND "
                                    "assignment = :a"), {"s": student, "a": assignment}).fetchone()
        old_answers = json.loads(before[0]) if before else {}
        gb.update_or_create_student(student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        submission = gb.update_or_create_submission(assignment, student, **kwargs)
        if not timestamp:
            submission.timestamp = None
        flagged = []
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                changed = (grade.name in old_answers and grade.name in answers
                           and old_answers[grade.name] != answers[grade.name])
                if grade.name in scores:
                    grade.auto_score = scores[grade.name]
                if grade.manual_score is not None:
                    # the instructor's score stands; an answer changed under it asks for review
                    if changed:
                        grade.needs_manual_grade = True
                        flagged.append(grade.name)
                elif grade.name in scores:
                    grade.needs_manual_grade = False
            for comment in notebook.comments:
                if comment.name in comments:
                    comment.auto_comment = comments[comment.name]
                if comment.name in flagged:
                    comment.auto_comment = ((comment.auto_comment or "") + " [The answer changed "
                                            "since it was hand-graded: please review.]").strip()
        gb.db.flush()
        late = float(submission.total_seconds_late) if timestamp else 0.0
        total_penalty = None
        for notebook in submission.notebooks:
            gb.db.refresh(notebook)
            notebook.late_submission_penalty = late_penalty(late_plugin, student, notebook.score,
                                                            late)
            if notebook.late_submission_penalty is not None:
                total_penalty = (total_penalty or 0) + notebook.late_submission_penalty
        gb.db.execute(text(f"INSERT OR REPLACE INTO {TABLE} (student, assignment, digest, answers, "
                           "feedback, runs, graded_at) VALUES (:s, :a, :d, :ans, :f, :r, :t)"),
                      {"s": student, "a": assignment, "d": digest, "ans": json.dumps(answers),
                       "f": feedback, "r": (before[1] if before else 0) + 1, "t": time.time()})
        gb.db.commit()
        return Late(late, total_penalty, tuple(flagged))


def late_penalty(plugin, student: str, score: float, seconds_late: float) -> float | None:
    """nbgrader's late-penalty plugin's penalty, kept between 0 and the score (as nbgrader's
    AssignLatePenalties keeps it); None when on time or the plugin gives none."""
    if plugin is None or seconds_late <= 0:
        return None
    penalty = plugin.late_submission_penalty(student, score, seconds_late)
    return None if penalty is None else min(max(float(penalty), 0.0), float(score))


def digest_of(folder: Path, *extra: bytes) -> str:
    """A hash of a submission folder's regular files (names and bytes, links skipped) and of
    `extra` (the assignment's checks and source): what decides whether to grade it again."""
    h = hashlib.sha256()
    for item in extra:
        h.update(hashlib.sha256(item).digest())
    for _, paths in regular_files(folder):
        for path in paths:
            h.update(str(path.relative_to(folder)).encode() + b"\x00")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
