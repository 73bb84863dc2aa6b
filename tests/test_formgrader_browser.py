"""nbgrader's formgrader as an instructor meets it: Chromium, driven by Playwright, on JupyterLab
started as `make lab-instructor` starts it, over a copy of this repository's files.

On a fresh copy (no course/ yet): `python -m grading init`, then `python -m d2l_utils.lab
--instructor`. Formgrader's Manage Assignments lists the four assignments, with no warning
about the exchange and no API error. Then the featherweight selftest assignment of
tests/test_course.py joins the copy's solutions/ (formgrader lists, in Manage Assignments and
Manual Grading, only assignments whose source is there), two submissions of it are graded into
the copy's course with `python -m grading grade`; in the browser the instructor
gives the written answer a score and a comment, a forced regrade keeps both (the grading page,
the gradebook and grades.csv agree), and formgrader's Autograde button refuses, naming
`make grade`, and changes nothing. Throughout, no formgrader request answers 5xx; at the end,
no page left 127.0.0.1 and no page logged an error.

The tests run in order and share one JupyterLab and one browser. Requests to any other host are
recorded and blocked (the test never depends on the network). A screenshot of the submissions
page after grading is kept in the test's tmp folder and copied to /tmp/formgrader.png.

Chromium is Debian's (`apt-get install chromium`, or D2L_CHROMIUM=/path): without it these tests
skip, saying so, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FRAMEWORKS
from helpers.course import FIXTURE, submit_as
from helpers.lab_session import (chromium, copy_repository, isolated_env, jupyterlab,
                                 require_chromium)

pytestmark = pytest.mark.slow  # drives Chromium through formgrader: not in `make check`

ASSIGNMENT, NOTEBOOK, WRITTEN = "selftest", "exercises", "selftest-ex3-answer"
STUDENT = "ann"  # answers everything right; bob gets exercise 2 wrong
COMMENT = "Well put: a file outlives the kernel."
require_chromium()


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


class Instructor:
    """The copy, its environment, the running JupyterLab, and what the browser saw."""

    def __init__(self, base: Path):
        self.base, self.copy = base, base / "repo"
        self.course, self.source = self.copy / "course", self.copy / "solutions"
        self.submitted = self.course / "submitted"
        self.env = isolated_env(base)
        self.origin = self.token = None
        self.api_errors: list[str] = []     # formgrader responses (pages, API) with a 5xx status
        self.elsewhere: list[str] = []      # requests to any host but ours (blocked)
        self.blocked: set[str] = set()      # their URLs
        self.console: list[tuple[str, str]] = []  # (console errors and uncaught exceptions, URL)

    def grade(self, *extra: str) -> subprocess.CompletedProcess:
        """What `make grade` runs, on the selftest source, from the copy."""
        return _run([sys.executable, "-m", "grading", "grade", str(self.submitted), "--course",
                     str(self.course), "--source", str(self.source), "--jobs", "2", "--timeout",
                     "20", "--memory", "1", *extra], self.copy, self.env)

    def gradebook(self):
        from nbgrader.api import Gradebook

        from grading.course import put_alembic_on_path

        put_alembic_on_path()
        return Gradebook(f"sqlite:///{self.course / 'gradebook.db'}", "d2l-io")

    def grades(self) -> dict[str, tuple]:
        """Every grade and comment of STUDENT's selftest, as the gradebook holds them."""
        with self.gradebook() as gb:
            nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, STUDENT)
            found = {g.name: (g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                     for g in nb.grades}
            found.update({f"{c.name} (comment)": (c.auto_comment, c.manual_comment)
                          for c in nb.comments})
            return found

    def csv_row(self) -> dict[str, str]:
        with open(self.course / "grades.csv") as f:
            rows = [r for r in csv.DictReader(f)
                    if r["student_id"] == STUDENT and r["assignment"] == ASSIGNMENT]
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture(scope="module")
def instructor(tmp_path_factory):
    """A copy of the repository's files (tracked, or new and not ignored), then what `make
    lab-instructor` runs in it: `python -m grading init` and JupyterLab with nbgrader's tools."""
    me = Instructor(tmp_path_factory.mktemp("formgrader"))
    copy_repository(me.copy)
    assert not me.course.exists(), "a fresh copy has no course/ yet"
    _run([sys.executable, "-m", "grading", "init"], me.copy, me.env)
    assert (me.course / "gradebook.db").is_file() and (me.course / "exchange").is_dir()
    with jupyterlab(me.copy, me.env, me.base / "lab.log", "--instructor") as url:
        m = re.match(r"(http://127\.0\.0\.1:\d+)/.*\?token=(\w+)", url)
        me.origin, me.token = m.groups()
        yield me


@pytest.fixture(scope="module")
def page(instructor):
    me = instructor
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        local = me.origin + "/"

        def elsewhere(route):
            me.elsewhere.append(f"{route.request.url} (from {route.request.frame.url})")
            me.blocked.add(route.request.url)
            route.abort()

        context.route(lambda url: not url.startswith(local) and not url.startswith("data:"),
                      elsewhere)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("response", lambda r: me.api_errors.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 500 and "/formgrader/" in r.url else None)
        page.on("console", lambda m: me.console.append(
            (f"{page.url}: console {m.type}: {m.text} ({m.location.get('url')})",
             m.location.get("url") or "")) if m.type == "error" else None)
        page.on("pageerror", lambda e: me.console.append((f"{page.url}: uncaught {e}", "")))
        yield page


def _wait_loaded(page) -> None:
    """Formgrader's list pages fetch their rows after load and set `models.loaded`."""
    page.wait_for_function("() => window.models !== undefined && models.loaded === true")


def _open_grading_page(page):
    """From the sidebar's Manual Grading: the assignment, its notebook, the first submission
    (formgrader hides names by default: "Submission #1"). Returns once its grades and comments
    are loaded and bound to the inputs."""
    for link, url in ((page.locator(".nav a", has_text="Manual Grading"), "gradebook"),
                      (page.locator(f"#main-table td.name a:text-is('{ASSIGNMENT}')"),
                       f"gradebook/{ASSIGNMENT}"),
                      (page.locator(f"#main-table td.name a:text-is('{NOTEBOOK}')"),
                       f"gradebook/{ASSIGNMENT}/{NOTEBOOK}")):
        link.click()
        page.wait_for_url(re.compile(rf"/formgrader/{url}/?$"))
        _wait_loaded(page)
    rows = page.locator("#main-table tr")
    assert rows.count() == 2, rows.all_inner_texts()  # ann's and bob's
    rows.filter(has=page.locator(f"a.name-shown:text-is('{STUDENT}')")).locator("a.name-hidden").click()
    page.wait_for_url(re.compile(r"/formgrader/submissions/\w+/?$"))
    _wait_grading_page(page)


def _wait_grading_page(page) -> None:
    page.wait_for_function("() => window.formgrader && formgrader.grades && formgrader.grades.loaded"
                           " && formgrader.comments && formgrader.comments.loaded")
    student = page.locator("a.name-shown").first.text_content().strip()
    assert student == STUDENT, student


def _submissions_page(page, me):
    """The assignment's Manage Submissions page, from Manage Assignments: its number of
    submissions links there. Returns STUDENT's row."""
    page.goto(f"{me.origin}/formgrader/manage_assignments")
    _wait_loaded(page)
    assignment = page.locator("#main-table tr", has=page.locator(f"td.name a:text-is('{ASSIGNMENT}')"))
    assignment.locator("td.num-submissions a").click()
    page.wait_for_url(re.compile(rf"/formgrader/manage_submissions/{ASSIGNMENT}/?$"))
    _wait_loaded(page)
    return page.locator("#main-table tr", has=page.locator(f"td.student-id:text-is('{STUDENT}')"))


def test_fresh_course_formgrader_lists_the_four_assignments(instructor, page):
    me = instructor
    page.goto(f"{me.origin}/formgrader?token={me.token}")
    page.wait_for_url(re.compile(r"/formgrader/manage_assignments/?$"))
    _wait_loaded(page)
    assert page.locator(".page-header h1").nth(1).text_content().strip() == "Manage Assignments"
    names = page.locator("#main-table td.name").all_text_contents()
    assert sorted(n.strip() for n in names) == sorted(FRAMEWORKS), names
    assert page.locator("#warning-exchange, #warning-course-id, #warning-windows").count() == 0
    assert "does not exist" not in page.locator("body").inner_text()
    assert me.api_errors == []


def test_hand_grade_survives_a_forced_regrade(instructor, page):
    me = instructor
    # The selftest source joins the copy's solutions/; two submissions in nbgrader's layout, as
    # `nbgrader collect` leaves them (course/submitted/<student>/<assignment>/).
    (me.source / ASSIGNMENT).mkdir()
    shutil.copyfile(FIXTURE, me.source / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    for student, ex2 in ((STUDENT, "ex2"), ("bob", "ex2-wrong")):
        submit_as(me.submitted, student, ex2, "2026-01-15 12:00:00.000000 UTC", ex3="ex3")
    me.grade()
    assert float(me.csv_row()["raw_score"]) == 4.0, me.csv_row()  # 4 automatic points of 5

    # Formgrader lists both graded submissions; ann's written answer waits for a hand grade.
    row = _submissions_page(page, me)
    assert sorted(page.locator("#main-table td.student-id").all_text_contents()) == [STUDENT, "bob"]
    assert row.locator("td.status").inner_text().strip() == "needs manual grading"
    assert row.locator("td.score").inner_text().strip() == "4 / 5"

    # Hand-grading: a score and a comment for the written answer, each saved by formgrader on
    # change (a PUT to its API); wait for both answers.
    _open_grading_page(page)
    score, comment = page.locator(f"input.score#{WRITTEN}"), page.locator(f"textarea#{WRITTEN}-comment")
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url
                              and r.request.method == "PUT") as saved:
        score.fill("1")
        score.blur()
    assert saved.value.status == 200 and saved.value.json()["manual_score"] == 1.0, saved.value.text()
    with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url
                              and r.request.method == "PUT") as saved:
        comment.fill(COMMENT)
        comment.blur()
    assert saved.value.status == 200 and saved.value.json()["manual_comment"] == COMMENT
    assert me.grades()[WRITTEN][1:] == (1.0, None, False)

    # A forced regrade from the command line, with formgrader still open, keeps both.
    autograded = me.course / "autograded" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    graded_at = autograded.stat().st_mtime_ns
    me.grade("--force")
    assert autograded.stat().st_mtime_ns != graded_at, "--force grades ann's submission again"
    page.reload()
    _wait_grading_page(page)
    assert score.input_value() == "1" and comment.input_value() == COMMENT
    grades = me.grades()
    assert grades[WRITTEN][1:] == (1.0, None, False), grades
    assert grades[f"{WRITTEN} (comment)"][1] == COMMENT, grades
    row = me.csv_row()
    assert (float(row["raw_score"]), float(row["score"]), float(row["max_score"])) == (5.0, 5.0, 5.0), row

    # The submissions page lists it graded, with the hand-given point: the screenshot.
    row = _submissions_page(page, me)
    assert row.locator("td.status").inner_text().strip() == "graded"
    assert row.locator("td.score").inner_text().strip() == "5 / 5"
    shot = me.base / "formgrader.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, "/tmp/formgrader.png")


def test_autograde_button_refuses_and_changes_nothing(instructor, page):
    me = instructor
    before = me.grades()
    autograded = me.course / "autograded" / STUDENT / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    notebook, csv_before = autograded.read_bytes(), (me.course / "grades.csv").read_bytes()
    row = _submissions_page(page, me)
    with page.expect_response(lambda r: r.url.endswith(
            f"/formgrader/api/submission/{ASSIGNMENT}/{STUDENT}/autograde")) as answered:
        row.locator("td.autograde a").click()
    result = json.loads(answered.value.text())
    said = result.get("log", "") + result.get("error", "")
    assert result["success"] is False and "make grade" in said, result
    dialog = page.locator("#error-modal")
    dialog.wait_for(state="visible")
    assert "make grade" in dialog.inner_text()
    dialog.locator(".modal-footer button", has_text="OK").click()
    dialog.wait_for(state="hidden")
    assert me.grades() == before
    assert autograded.read_bytes() == notebook
    assert (me.course / "grades.csv").read_bytes() == csv_before
    row = _submissions_page(page, me)  # and formgrader still shows the grade
    assert row.locator("td.score").inner_text().strip() == "5 / 5"


def test_formgrader_stays_on_this_machine(instructor, page):
    """Last, over every page the tests above opened (alone, it has nothing to check): no request left 127.0.0.1, no formgrader request answered
    5xx, and no page logged an error or threw. The one console error allowed is a blocked
    request's own "Failed to load resource" (that request is reported as leaving the machine)."""
    me = instructor
    errors = [text for text, source in me.console
              if not (source in me.blocked and "Failed to load resource" in text)]
    for line in me.elsewhere + [text for text, _ in me.console]:
        print(line)
    problems = ([f"answered 5xx: {line}" for line in me.api_errors]
                + [f"request to another host (blocked): {line}" for line in me.elsewhere]
                + [f"page error: {line}" for line in errors])
    assert problems == [], "\n".join(problems)
