"""A grading batch SIGKILLed at random moments, then started again until it finishes: every
submission is graded exactly once (recorded once, never graded again after it was recorded),
no grade is lost, the gradebook is consistent, and nothing the killed runs started is left
running or on disk."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.grading import FIXTURES, grade_cmd, make_source, read_scores

KILLS = 6
STUDENTS = 16


@pytest.mark.slow  # grades 16 submissions through 7 runs: not in `make check`
def test_killed_batches_resume_and_grade_each_submission_once(tmp_path, request):
    entries = {e["student"]: e for e in json.loads((FIXTURES / "hostile" / "manifest.json").read_text())}
    pool = [entries[s] for s in ("fair_folder", "fair_struct", "fair_partial", "fair_partial_ex1")]
    subs = tmp_path / "submitted"
    expected = {}
    for i in range(STUDENTS):
        e = pool[i % len(pool)]
        folder = subs / f"s{i:02d}" / "selftest"
        folder.mkdir(parents=True)
        (folder / "exercises.ipynb").write_bytes((FIXTURES / "hostile" / e["notebook"]).read_bytes())
        expected[f"s{i:02d}"] = float(e["points"])
    course, source = tmp_path / "course", make_source(tmp_path)
    cmd = grade_cmd(sys.executable, subs, course, source, timeout=20, memory=1, jobs=2)
    # Its own TMPDIR: the runs' work folders, and every process they start, carry its path
    # (a short one: the kernels' Unix sockets live below it).
    tmp = Path(tempfile.mkdtemp(prefix="d2l-resume-"))
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    env = dict(os.environ, TMPDIR=str(tmp))
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    kills, moments = 0, []
    for _ in range(40):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        if kills < KILLS:
            moment = rng.uniform(1.0, 3.5)
            try:
                proc.wait(timeout=moment)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                moments.append(round(moment, 2))
                continue
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        if kills >= KILLS:
            break
    assert kills == KILLS, f"the batch finished before it could be killed {KILLS} times"
    print(f"{STUDENTS} submissions, killed {kills} times at {moments} s after each start, "
          f"then one run to the end")
    time.sleep(1)  # the killed runs' runners and sandboxes die with their parents
    assert _running(str(tmp)) == []
    with sqlite3.connect(course / "gradebook.db") as db:
        runs = dict(db.execute("SELECT student, runs FROM d2l_grading"))
        submissions = db.execute("SELECT count(*) FROM submitted_assignment").fetchone()[0]
    assert runs == {s: 1 for s in expected}, f"graded more than once (killed at {moments} s)"
    assert submissions == STUDENTS
    assert {s: v for (s, _), v in read_scores(course).items()} == expected, out[-2000:]
    # The killed runs' work folders (sandboxes, exports) are gone too: each run removes those
    # of dead runs. (Libraries' own temporary folders of a killed process, such as
    # multiprocessing's pymp-*, are theirs and stay.)
    assert [p.name for p in tmp.iterdir() if "d2l-" in p.name] == []


def _running(marker: str) -> list[str]:
    """Processes whose command line or environment holds `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline + environ:
            found.append(pid + " " + cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def test_an_assignment_left_without_its_notebook_is_made_again(tmp_path):
    """A run killed while nbgrader generates an assignment can leave the assignment in the
    gradebook without its notebook; the next run makes it again instead of failing."""
    from nbgrader.api import Gradebook

    from grading.course import COURSE_ID, NOTEBOOK, points, put_alembic_on_path
    from grading.grade import prepare_course
    from grading.gradebook import db_url

    put_alembic_on_path()  # nbgrader's Gradebook runs the alembic command
    course, source = tmp_path / "course", make_source(tmp_path)
    course.mkdir()
    with Gradebook(db_url(course), COURSE_ID) as gb:
        gb.update_or_create_assignment("selftest")
    prepare_course(course, {"selftest"}, {"ann"}, source)
    with Gradebook(db_url(course), COURSE_ID) as gb:
        notebook = gb.find_notebook(NOTEBOOK, "selftest")
        made = {g.name: g.max_score for g in notebook.grade_cells}
    assert made == points(source / "selftest" / f"{NOTEBOOK}.ipynb", written=True)
