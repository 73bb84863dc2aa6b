"""Grading's pieces that need no kernel: bad notebooks, feedback that cannot fail a score,
the checker's result validation and scoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grading import checks
from grading.grade import feedback_page
from grading.files import SubmissionError
from grading.submission import Graded, read_notebook, read_result, thread_env

BAD = {
    "not-json.ipynb": b'{"cells": [',
    "binary.ipynb": b"\x89PNG\r\n\x1a\n\x00\x00",
    "not-a-notebook.ipynb": b'{"cells": "nope", "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "list.ipynb": b"[1, 2, 3]",
    "deep.ipynb": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_notebook_is_one_clear_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD[name])
    with pytest.raises(SubmissionError) as err:
        read_notebook(path)
    line = str(err.value)
    assert line.startswith(f"{path}: not a valid notebook (") and "\n" not in line


def test_a_missing_or_linked_notebook_is_refused(tmp_path):
    with pytest.raises(SubmissionError, match="no notebook"):
        read_notebook(tmp_path / "exercises.ipynb")
    (tmp_path / "real.ipynb").write_text("{}")
    (tmp_path / "exercises.ipynb").symlink_to(tmp_path / "real.ipynb")
    with pytest.raises(SubmissionError, match="no notebook"):
        read_notebook(tmp_path / "exercises.ipynb")


def test_feedback_survives_a_notebook_that_cannot_be_rendered(tmp_path):
    broken = tmp_path / "executed.ipynb"
    broken.write_text("{not json")
    g = Graded("ann", "selftest", {"a": [checks.Check("works", True)]}, {}, broken)
    page = feedback_page("ann", "selftest", {"a": 2.0}, g, "")
    assert "Score: 2 / 2" in page and "could not be rendered" in page


def test_feedback_page_loads_nothing_from_other_hosts(tmp_path):
    import re

    nb = tmp_path / "executed.ipynb"
    nb.write_text((Path(__file__).parent / "fixtures" / "selftest" / "exercises.ipynb").read_text())
    g = Graded("ann", "selftest", {"a": [checks.Check("works", True)]}, {}, nb)
    page = feedback_page("ann", "selftest", {"a": 2.0}, g, "")
    assert "Exercise 3" in page, "the notebook is rendered"
    assert re.findall(r"""(?:src|href)=["']?(?:https?:)?//[^"'\s>]+""", page) == []


def test_checker_results_are_validated(tmp_path):
    f = tmp_path / "result.json"
    f.write_text(json.dumps([{"name": "x", "passed": "yes", "detail": 3}]))
    assert read_result(f) == [checks.Check("x", False, "3")]
    f.write_text(json.dumps([{"name": "y" * 1000, "passed": True}, 7]))
    assert read_result(f) == [checks.Check("y" * 300, True, "")]
    for bad in ("[]", "{}", '{"a": []}', "[1, 2]", "not json"):
        f.write_text(bad)
        assert read_result(f) is None, bad


def test_points_are_shared_by_checks():
    found = [checks.Check("one", True), checks.Check("two", False), checks.Check("three", True)]
    assert checks.score(3, found) == 2
    assert checks.score(3, []) == 0
    assert checks.score(4, [checks.Check("n", 1)]) == 0  # only True counts
    g = Graded("ann", "selftest", {"a": found}, {}, None)
    assert g.scores({"a": 3.0, "b": 1.0}) == {"a": 2.0, "b": 0.0}  # b: no checks found


def test_every_assignment_has_checks_for_its_graded_cells():
    from conftest import FRAMEWORKS, ROOT
    from grading.course import points

    for fw in FRAMEWORKS:
        module = checks.load(fw)
        assert set(module.EXPORTS) == set(points(ROOT / "solutions" / fw / "exercises.ipynb")), fw
        assert module.HELPERS.strip()
    assert set(checks.load("selftest").EXPORTS) == set(
        points(Path(__file__).parent / "fixtures" / "selftest" / "exercises.ipynb"))


def test_the_trusted_process_cannot_import_the_packages_its_checks_leave_unused():
    """TensorFlow's checks name JAX, pandas and Matplotlib unused: in the trusted process they
    fail to import as if not installed (TensorFlow and Keras then skip them), the rest imports."""
    code = textwrap.dedent("""
        import json, sys
        from grading import check
        unused = check.load("tensorflow").UNUSED_PACKAGES
        failed = []
        for name in [*unused, unused[0] + ".numpy"]:
            try:
                __import__(name)
            except ModuleNotFoundError as exc:
                failed.append(exc.name)
        import numpy.linalg, xml.dom
        print(json.dumps([list(unused), failed]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    unused, failed = json.loads(proc.stdout)
    assert set(unused) >= {"jax", "pandas", "matplotlib"}
    assert failed == [*unused, "jax"]  # jax.numpy: its package fails first


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_env_is_understood_by_every_framework(threads):
    """Each sandbox's thread settings are flags the frameworks accept, and leave room for the
    flags a program adds itself (the sharded-checkpoint programs append a device count to
    XLA_FLAGS; a malformed entry once made XLA ignore it)."""
    env = dict(os.environ, **thread_env(threads), JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=3").strip()
    code = "import jax, torch; print(len(jax.devices()), torch.get_num_threads())"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["3", str(threads)], proc.stdout


def test_arrays_are_compared_one_way_for_every_assignment():
    import numpy as np

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert checks.close(a, a.astype(np.float64) + 1e-7)
    assert not checks.close(a, a + 1e-3)
    assert not checks.close(a, a.T), "same values, other shape"
    assert not checks.close(a.astype(object), a), "only numbers compare"
    assert checks.difference(a, a.T) == "shape (2, 3), expected (3, 2)"
    assert checks.difference(a.astype(str), a) == "dtype <U32"
    assert checks.difference(a + 0.5, a) == "max difference 0.5"
    assert checks.max_diff(np.zeros(0), np.zeros(0)) == 0.0


def test_dead_work_folders_are_swept_even_when_half_removed(tmp_path, monkeypatch):
    """A killed run's folder goes (its lock is free); a live run's stays; a folder that an
    interrupted removal left without its lock goes too, and a removal that cannot finish keeps
    the lock, so that the next sweep knows the folder for a dead run's."""
    import fcntl
    import tempfile

    from grading import engine

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def folder(name: str, lock: bool = True) -> Path:
        f = tmp_path / name
        (f / "job-1" / "run").mkdir(parents=True)
        (f / "job-1" / "run" / "executed.ipynb").write_text("{}")
        if lock:
            (f / ".lock").touch()
        return f

    dead, live, lockless = folder("d2l-grading-dead"), folder("d2l-grading-live"), \
        folder("d2l-grading-lockless", lock=False)
    fd = os.open(live / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        stuck = folder("d2l-grading-stuck")
        real_rmtree = engine.shutil.rmtree
        monkeypatch.setattr(engine.shutil, "rmtree", lambda p, **kw: None if "stuck" in str(p)
                            else real_rmtree(p, **kw))  # as if a dying process still wrote there
        engine.remove_dead_work_folders()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d2l-grading-live", "d2l-grading-stuck"]
        assert (stuck / ".lock").exists() and (live / "job-1" / "run" / "executed.ipynb").exists()
        monkeypatch.setattr(engine.shutil, "rmtree", real_rmtree)
        engine.remove_dead_work_folders()  # the next sweep finishes it
        assert [p.name for p in tmp_path.iterdir()] == ["d2l-grading-live"]
    finally:
        os.close(fd)
    assert not dead.exists() and not lockless.exists()


def _ended_pid() -> int:
    """The pid of a process that has ended."""
    return int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True,
                              check=True).stdout)


# A child that burns `seconds` of CPU in a grandchild it leaves running (double fork): only a
# cgroup sees the grandchild. The test waits for the grandchild's file before it reads.
BURN = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        end = time.process_time() + float(sys.argv[1])
        while time.process_time() < end:
            pass
        open(sys.argv[2], "w").close()
    os._exit(0)
"""


def test_cpu_meter_counts_processes_its_runs_leave_behind(tmp_path):
    from grading.sandbox import CpuMeter

    meter = CpuMeter("unit")
    if not meter.complete:
        pytest.skip("no cgroup can be made here: the meter counts only waited-for children")
    done = tmp_path / "done"
    subprocess.run(meter.wrap([sys.executable, "-c", BURN, "0.4", str(done)]), check=True)
    for _ in range(200):
        if done.exists():
            break
        time.sleep(0.05)
    assert done.exists()
    assert meter.seconds() >= 0.35
    group = meter.group
    meter.close()
    assert not group.exists()
    # The cgroup of a meter whose process ended without closing it goes with the next meter.
    stale = group.parent / f"d2l-cpu-killed-{_ended_pid()}-1"
    stale.mkdir()
    CpuMeter("unit").close()
    assert not stale.exists()


def test_cpu_meter_on_cgroup_v2_adds_the_sandboxes_parent(tmp_path):
    from grading.sandbox import V2_PARENT, sandboxes_cpu_seconds

    assert sandboxes_cpu_seconds(tmp_path) is None  # v1, or no sandbox made yet
    (tmp_path / V2_PARENT).mkdir()
    (tmp_path / V2_PARENT / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert sandboxes_cpu_seconds(tmp_path) == 2.5


def test_a_killed_runs_empty_sandbox_cgroups_are_removed_by_the_next_run(tmp_path):
    """A grading run killed with its sandboxes running leaves their cgroups behind (empty,
    once the sandboxes die with it); the next process that makes a sandbox removes them."""
    from grading import sandbox

    found = sandbox._cgroup_root()
    if found is None:
        pytest.skip("sandbox cgroups need root")
    kind, base = found
    dead, live = _ended_pid(), os.getpid()
    places = sandbox.sandbox_parents(kind, base)
    stale = [d / f"d2l-grading-{dead}-7" for d in places]
    mine = [d / f"d2l-grading-{live}-999" for d in places]  # a live process's: kept
    for d in (*stale, *mine):
        d.mkdir(parents=True)
    try:
        sandbox.Confinement._swept = False
        sandbox.Confinement(2**30, 64).close()
        assert [d for d in stale if d.exists()] == []
        assert all(d.exists() for d in mine)
    finally:
        for d in (*stale, *mine):
            if d.exists():
                d.rmdir()
