"""A course run end to end with nbgrader's own commands, on the featherweight selftest assignment.

The instructor generates the release (`python -m grading generate`) and releases it with
`nbgrader release_assignment`; three students fetch, answer and `nbgrader submit` (ann on
time, bob on time then again after being hand-graded, cat after the due date); the instructor
`nbgrader collect`s, grades with `python -m grading grade`, hand-grades through nbgrader's API
(as formgrader does), regrades, releases feedback with `nbgrader release_feedback`, and each
student fetches it with `nbgrader fetch_feedback`. `nbgrader export` must give grades.csv, and
`nbgrader autograde` must refuse and change nothing.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.course import ANSWERS, FIXTURE, submit_as

from conftest import ROOT

pytestmark = pytest.mark.slow  # a course run with nbgrader's commands, graded for real: not in `make check`

NBGRADER = str(Path(sys.executable).parent / "nbgrader")

PENALTY = """
from nbgrader.plugins import LateSubmissionPlugin


class OnePointOff(LateSubmissionPlugin):
    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return 1.0


c = get_config()
c.AssignLatePenalties.plugin_class = OnePointOff
"""


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


class Course:
    def __init__(self, base: Path):
        self.base, self.course, self.source = base, base / "course", base / "source"
        (self.source / "selftest").mkdir(parents=True)
        (self.source / "selftest" / "exercises.ipynb").write_bytes(FIXTURE.read_bytes())
        self.course.mkdir()
        # The course's own nbgrader_config.py (nbgrader reads one in the course folder too),
        # with a late-penalty plugin of its own: one point off late work.
        (self.course / "nbgrader_config.py").write_text(PENALTY)
        self.flags = [f"--CourseDirectory.root={self.course}",
                      f"--CourseDirectory.db_url=sqlite:///{self.course / 'gradebook.db'}",
                      f"--CourseDirectory.source_directory={self.source}",
                      f"--Exchange.root={self.course / 'exchange'}"]

    def nbgrader(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """An instructor's nbgrader command, run from the repository (its nbgrader_config.py)."""
        return _run([NBGRADER, *args, *self.flags], ROOT, check)

    def student(self, name: str, *args: str) -> subprocess.CompletedProcess:
        home = self.base / "students" / name
        home.mkdir(parents=True, exist_ok=True)
        return _run([NBGRADER, *args, "--course=d2l-io", f"--Exchange.root={self.course / 'exchange'}",
                     f"--Exchange.cache={home / '.cache'}", f"--CourseDirectory.student_id={name}"],
                    home)

    def answer(self, name: str, ex1: str, ex2: str, ex3: str) -> None:
        path = self.base / "students" / name / "selftest" / "exercises.ipynb"
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
            text = {"selftest-ex1-code": ANSWERS[ex1], "selftest-ex2-code": ANSWERS[ex2],
                    "selftest-ex3-answer": ANSWERS[ex3]}.get(gid)
            if text is not None:
                cell["source"] = text
        path.write_text(json.dumps(nb))

    def grade(self, *extra: str) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "grading", "grade", str(self.course / "submitted"),
                     "--course", str(self.course), "--source", str(self.source), "--jobs", "2",
                     "--timeout", "20", "--memory", "1", *extra], ROOT)

    def rows(self) -> dict[str, dict[str, str]]:
        with open(self.course / "grades.csv") as f:
            return {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == "selftest"}

    def gradebook(self):
        from nbgrader.api import Gradebook

        from grading.course import put_alembic_on_path

        put_alembic_on_path()
        return Gradebook(f"sqlite:///{self.course / 'gradebook.db'}", "d2l-io")

    def runs(self) -> dict[str, int]:
        import sqlite3

        with sqlite3.connect(self.course / "gradebook.db") as db:
            return dict(db.execute("SELECT student, runs FROM d2l_grading"))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    c = Course(tmp_path_factory.mktemp("course"))
    log = {}
    _run([sys.executable, "-m", "grading", "generate", "selftest", "--course", str(c.course),
          "--source", str(c.source)], ROOT)
    c.nbgrader("release_assignment", "selftest")
    for name, ex2 in (("ann", "ex2"), ("bob", "ex2-wrong")):
        c.student(name, "fetch_assignment", "selftest")
        c.answer(name, "ex1", ex2, "ex3")
        c.student(name, "submit", "selftest")
    # The due date passes; cat submits after it.
    due = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + 1))
    c.nbgrader("db", "assignment", "add", "selftest", f"--duedate={due}")
    time.sleep(2.5)
    c.student("cat", "fetch_assignment", "selftest")
    c.answer("cat", "ex1", "ex2", "ex3")
    c.student("cat", "submit", "selftest")
    c.nbgrader("collect", "selftest", "--CollectApp.check_owner=False")
    log["first"] = c.grade()
    log["first_rows"] = c.rows()
    # Hand-grading, as formgrader's API saves it (a score given: no longer needs grading).
    with c.gradebook() as gb:
        for student, gid, score, extra in (("ann", "selftest-ex3-answer", 1, None),
                                           ("ann", "selftest-ex1-tests", None, 0.5),
                                           ("bob", "selftest-ex3-answer", 0.5, None)):
            grade = gb.find_grade(gid, "exercises", "selftest", student)
            grade.manual_score, grade.extra_credit = score, extra
            grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        gb.find_comment("selftest-ex3-answer", "exercises", "selftest", "ann").manual_comment = "Well put."
        gb.db.commit()
    # bob resubmits: exercise 2 fixed, the written answer rewritten.
    c.answer("bob", "ex1", "ex2", "ex3-changed")
    time.sleep(1)
    c.student("bob", "submit", "selftest")
    c.nbgrader("collect", "selftest", "--update", "--CollectApp.check_owner=False")
    log["regrade"] = c.grade()
    log["runs_after_regrade"] = c.runs()
    log["forced"] = c.grade("--force")
    c.nbgrader("release_feedback", "selftest")
    for name in ("ann", "bob", "cat"):
        c.student(name, "fetch_feedback", "selftest")
    return c, log


def test_first_grading_follows_timestamps_and_due_date(course):
    c, log = course
    rows = log["first_rows"]
    assert {s: float(r["raw_score"]) for s, r in rows.items()} == {"ann": 4.0, "bob": 2.0, "cat": 4.0}
    # cat was late and the course's plugin takes a point off late work; the others were on time
    assert float(rows["cat"]["late_submission_penalty"]) == 1.0 and float(rows["cat"]["score"]) == 3.0
    assert float(rows["ann"]["late_submission_penalty"]) == 0.0
    assert all(r["timestamp"] for r in rows.values()), "the submissions' timestamps are recorded"
    page = (c.course / "feedback" / "cat" / "selftest" / "exercises.html").read_text()
    assert "after the due date: late penalty 1 point." in page


def test_regrading_keeps_what_the_instructor_entered(course):
    c, log = course
    assert "2 submission(s) already graded" in log["regrade"].stdout + log["regrade"].stderr
    assert log["runs_after_regrade"] == {"ann": 1, "bob": 2, "cat": 1}, "only bob's new files were graded"
    assert "graded by hand and the answer has changed" in log["regrade"].stdout
    with c.gradebook() as gb:
        ann = gb.find_grade("selftest-ex3-answer", "exercises", "selftest", "ann")
        assert ann.manual_score == 1 and not ann.needs_manual_grade
        assert gb.find_comment("selftest-ex3-answer", "exercises", "selftest", "ann").manual_comment == "Well put."
        assert gb.find_grade("selftest-ex1-tests", "exercises", "selftest", "ann").extra_credit == 0.5
        bob = gb.find_grade("selftest-ex3-answer", "exercises", "selftest", "bob")
        assert bob.manual_score == 0.5 and bob.needs_manual_grade, "kept, and flagged for review"
        assert len(gb.assignment_submissions("selftest")) == 3
    rows = c.rows()  # after --force too: hand-given points count (bob's resubmission was late)
    assert {s: float(r["score"]) for s, r in rows.items()} == {"ann": 5.5, "bob": 3.5, "cat": 3.0}


def test_feedback_released_and_fetched_the_nbgrader_way(course):
    c, _ = course
    for name, score in (("ann", "4 / 4"), ("bob", "4 / 4"), ("cat", "4 / 4")):
        pages = list((c.base / "students" / name / "selftest" / "feedback").glob("*/exercises.html"))
        assert len(pages) >= 1, name
        newest = max(pages, key=lambda p: p.parent.name)
        assert f"Score: {score}" in newest.read_text(), name


def test_nbgrader_export_gives_the_same_csv(course):
    c, _ = course
    out = c.base / "export.csv"
    c.nbgrader("export", f"--CsvExportPlugin.to={out}")
    assert out.read_text() == (c.course / "grades.csv").read_text()


def test_nbgrader_autograde_refuses_and_changes_nothing(course):
    c, _ = course
    before = c.rows()
    autograded = (c.course / "autograded" / "ann" / "selftest" / "exercises.ipynb").read_bytes()
    proc = c.nbgrader("autograde", "selftest", "--force", check=False)
    assert proc.returncode != 0
    assert "make grade" in proc.stdout + proc.stderr
    export = c.base / "after.csv"
    c.nbgrader("export", f"--CsvExportPlugin.to={export}")
    with open(export) as f:
        assert {r["student_id"]: r for r in csv.DictReader(f)} == before
    assert (c.course / "autograded" / "ann" / "selftest" / "exercises.ipynb").read_bytes() == autograded


def test_bad_input_is_one_line_each_and_loses_nothing(tmp_path):
    """No timestamp, a bad timestamp, two folders of one student, a student not in the
    roster, a feedback page edited by hand: one line each naming the path, the rest graded."""
    import sqlite3

    c = Course(tmp_path)
    (c.course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.Autograde.create_student = False\n")
    subs = c.course / "submitted"
    submit_as(subs, "ann", timestamp="2026-01-01 10:00:00.000000 UTC")
    submit_as(subs, "Ann", ex2="ex2-wrong", timestamp="2026-01-02 10:00:00.000000 UTC")
    submit_as(subs, "bob")  # no timestamp.txt
    submit_as(subs, "cat", timestamp="yesterday-ish")
    submit_as(subs, "eve", timestamp="2026-01-01 10:00:00.000000 UTC")  # not in the roster
    _run([sys.executable, "-m", "grading", "init", "--course", str(c.course)], ROOT)
    with c.gradebook() as gb:
        for name in ("ann", "Ann", "bob", "cat"):
            gb.add_student(name)
    proc = c.grade()
    out = proc.stdout + proc.stderr
    assert f"{subs / 'ann' / 'selftest'}: a second submission of 'Ann' (also {subs / 'Ann' / 'selftest'}); graded the later one only" in out
    assert f"{subs / 'bob' / 'selftest' / 'timestamp.txt'}: missing" in out
    assert f"{subs / 'cat' / 'selftest' / 'timestamp.txt'}: not a timestamp" in out
    assert f"{subs / 'eve'}: student 'eve' is not in the course's roster" in out
    assert "eve" not in c.rows()
    with c.gradebook() as gb:
        assert sorted(s.student.id for s in gb.assignment_submissions("selftest")) == ["Ann", "bob", "cat"]
    assert float(c.rows()["Ann"]["raw_score"]) == 2.0, "the later of the two: the wrong mean"
    # A feedback page the instructor edited is kept; the regrade's page goes beside it.
    page = c.course / "feedback" / "bob" / "selftest" / "exercises.html"
    page.write_text(page.read_text().replace("Score:", "Score (see my note!):"))
    edited = page.read_bytes()
    proc = c.grade("--force")
    out = proc.stdout + proc.stderr
    assert f"{page}: edited by hand since it was written, so it is kept" in out
    assert page.read_bytes() == edited
    assert (c.course / "feedback-regraded" / "bob" / "selftest" / "exercises.html").is_file()
    # A gradebook locked by another program (formgrader saving): nothing changes, one line.
    before = (c.course / "gradebook.db").read_bytes()
    lock = sqlite3.connect(c.course / "gradebook.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        proc = _run([sys.executable, "-m", "grading", "grade", str(subs), "--course", str(c.course),
                     "--source", str(c.source), "--force", "--lock-wait", "2"], ROOT, check=False)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"{c.course / 'gradebook.db'}: locked by another program")
    assert (c.course / "gradebook.db").read_bytes() == before
    assert page.read_bytes() == edited


def test_release_is_the_committed_workbook(tmp_path):
    """Students fetch exactly notebooks/<framework>/exercises.ipynb (its raises-exception tags,
    JupyterLab's form), released by nbgrader's own release_assignment."""
    course = tmp_path / "course"
    _run([sys.executable, "-m", "grading", "generate", "pytorch", "--course", str(course)], ROOT)
    _run([NBGRADER, "release_assignment", "pytorch", f"--CourseDirectory.root={course}",
          f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}",
          f"--Exchange.root={course / 'exchange'}"], ROOT)
    student = tmp_path / "student"
    student.mkdir()
    _run([NBGRADER, "fetch_assignment", "pytorch", "--course=d2l-io",
          f"--Exchange.root={course / 'exchange'}", f"--Exchange.cache={student / '.cache'}"], student)
    committed = (ROOT / "notebooks" / "pytorch" / "exercises.ipynb").read_bytes()
    assert (student / "pytorch" / "exercises.ipynb").read_bytes() == committed
    assert [p.name for p in (student / "pytorch").iterdir()] == ["exercises.ipynb"]
