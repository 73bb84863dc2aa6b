"""Grading on a Dask cluster: a TLS scheduler and workers on 127.0.0.1, each a process in a
folder of its own, sharing no file with the client. The scores are those local grading gives
(the hostile manifest's, and full marks for a real PyTorch solution); a worker killed mid-batch
costs nothing and leaves nothing running; a worker whose environment differs is refused; a
worker whose answer is oversized has it refused and nothing recorded."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.cluster import Cluster, make_certs
from helpers.grading import FIXTURES, grade_cmd, lay_out, make_source, read_scores

pytestmark = pytest.mark.slow  # starts a cluster and grades real submissions: not in `make check`

# A cross-section of the hostile class: correct answers unlike the solution, cheats, and code
# that attacks the processes around it (the worker's, this time).
# (Not the ones that wait out a time limit: tests/test_grading.py grades the whole class.)
CASES = ["fair_folder", "fair_partial", "cheat_ast_transformer", "cheat_forge_exports",
         "cheat_daemon_forge", "cheat_kill_runner_forge", "hostile_fork_bomb", "hostile_daemons",
         "hostile_kill_all", "hostile_os_exit", "hostile_not_json"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), make_certs(tmp_path_factory.mktemp("certs") / "c"))
    try:
        c.start_scheduler()
        c.start_worker("w1")
        c.start_worker("w2")
        c.wait_for_workers(2)
        yield c
    finally:
        c.stop()


def _grade(cluster: Cluster, subs: Path, course: Path, source: Path, timeout: int = 10,
           memory: float = 4) -> subprocess.CompletedProcess:
    cmd = grade_cmd(sys.executable, subs, course, source, timeout=timeout, memory=memory)
    cmd = [c for c in cmd if c not in ("--jobs", "3")] + cluster.client_options()
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _runs(course: Path) -> dict[str, int]:
    with sqlite3.connect(course / "gradebook.db") as db:
        return dict(db.execute("SELECT student, runs FROM d2l_grading"))


def test_the_cluster_grades_as_local_grading_does(cluster, tmp_path):
    manifest = {e["student"]: e for e in json.loads((FIXTURES / "hostile" / "manifest.json").read_text())}
    entries = [manifest[s] for s in CASES]
    source = make_source(tmp_path)
    subs = lay_out(tmp_path, entries, FIXTURES / "hostile", "selftest")
    real = subs / "real_student" / "pytorch"
    real.mkdir(parents=True)
    (real / "exercises.ipynb").write_bytes((ROOT / "solutions" / "pytorch" / "exercises.ipynb").read_bytes())
    course = tmp_path / "course"
    proc = _grade(cluster, subs, course, source)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    want = {(e["student"], "selftest"): float(e["points"]) for e in entries}
    want[("real_student", "pytorch")] = 10.0
    got = read_scores(course)  # (grades.csv lists every student under every assignment)
    assert {k: got[k] for k in want} == want, proc.stderr[-3000:]
    assert set(_runs(course).values()) == {1}
    # The submissions' processes (fork bombs, daemons) ended with their sandboxes.
    time.sleep(1)
    assert cluster.left_running("w1") == [] and cluster.left_running("w2") == []


def test_a_worker_killed_mid_batch_costs_nothing(cluster, tmp_path):
    manifest = {e["student"]: e for e in json.loads((FIXTURES / "hostile" / "manifest.json").read_text())}
    pool = [manifest[s] for s in ("fair_folder", "fair_struct", "fair_partial", "fair_npy")]
    entries = [dict(pool[i % len(pool)], student=f"s{i:02d}") for i in range(8)]
    subs = lay_out(tmp_path, entries, FIXTURES / "hostile", "selftest")
    source, course = make_source(tmp_path), tmp_path / "course"
    cluster.start_worker("doomed")
    cluster.wait_for_workers(3)
    cmd = grade_cmd(sys.executable, subs, course, source, timeout=20, memory=1)
    cmd = [c for c in cmd if c not in ("--jobs", "3")] + cluster.client_options()
    client = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    # Killed once it is grading a submission: its job folder exists.
    work = cluster.folders["doomed"] / "tmp"
    deadline = time.monotonic() + 120
    while not list(work.glob("d2l-grading-*/job-*/run")):
        assert time.monotonic() < deadline and client.poll() is None, "the doomed worker got no job"
        time.sleep(0.05)
    cluster.kill("doomed")
    out, _ = client.communicate(timeout=600)
    assert client.returncode == 0, out[-3000:]
    assert _runs(course) == {e["student"]: 1 for e in entries}, out[-2000:]
    got = read_scores(course)
    assert {e["student"]: got[(e["student"], "selftest")] for e in entries} == \
        {e["student"]: float(e["points"]) for e in entries}
    time.sleep(1)  # its runner and sandboxes die with it
    assert cluster.left_running("doomed") == []


def test_a_different_worker_is_refused_and_an_oversized_answer_is_not_recorded(tmp_path_factory, tmp_path):
    """Its own cluster: one worker with a package the client lacks, one that answers with more
    than a result may hold."""
    extra = tmp_path / "pythonpath"
    (extra / "zz_extra-1.0.dist-info").mkdir(parents=True)
    (extra / "zz_extra-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: zz-extra\nVersion: 1.0\n")
    c = Cluster(tmp_path, make_certs(tmp_path_factory.mktemp("certs") / "c"))
    try:
        c.start_scheduler()
        c.start_worker("other", env_extra={"PYTHONPATH": str(extra)})
        c.start_worker("bloated", "--preload", str(ROOT / "tests" / "helpers" / "bloated_worker.py"))
        c.wait_for_workers(2)
        manifest = {e["student"]: e for e in json.loads((FIXTURES / "hostile" / "manifest.json").read_text())}
        subs = lay_out(tmp_path, [manifest["fair_folder"], manifest["fair_npy"]],
                       FIXTURES / "hostile", "selftest")
        source, course = make_source(tmp_path), tmp_path / "course"
        proc = _grade(c, subs, course, source, memory=1)
    finally:
        c.stop()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    refused = [line for line in out.splitlines() if "refused: its packages differ" in line]
    assert len(refused) == 1 and "there only: zz-extra==1.0" in refused[0], out[-3000:]
    bloated = [line for line in out.splitlines() if "the worker's result was refused" in line]
    assert len(bloated) == 2 and all("more than the" in line and "not recorded" in line for line in bloated), out[-3000:]
    assert _runs(course) == {}, "an oversized answer was recorded"
