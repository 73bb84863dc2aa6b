"""The verdict against cases written from the prompts alone (tests/fixtures/verdict/), by a
writer who had not seen the checks: checkpoints kept in the kernel's memory or in files outside
`path` (exercise 1 must come back from the files at `path` alone, in another process, after
the folder moved), unusual but correct answers that such a check must not penalise, and (in
the framework folders, graded with the fair class in test_grading_fair.py) exports that bomb
their checker or memorise the example input.

Each manifest entry gives "points" (exactly its honest work) or "at_most" (a cheat's bound),
and "per_exercise": the points of each exercise where they are unambiguous (checked by
tests/helpers/verdict.py's check_verdict).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from helpers.grading import grade_cmd, lay_out, make_source
from helpers.verdict import VERDICT, check_verdict, manifest

pytestmark = pytest.mark.slow  # grades the verdict cases in sandboxes: not in `make check`


@pytest.fixture(scope="module")
def selftest_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("verdict")
    entries = manifest("selftest")
    subs = lay_out(base, entries, VERDICT / "selftest", "selftest")
    proc = subprocess.run(grade_cmd(sys.executable, subs, base / "course", make_source(base),
                                    timeout=20, memory=1, jobs=3),
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base, entries


def test_memory_and_outside_files_do_not_restore_a_checkpoint(selftest_class):
    base, entries = selftest_class
    assert sum(e["student"].startswith("cheat_") for e in entries) >= 10
    assert sum(e.get("points") == 4 for e in entries) >= 3, "unusual correct answers"
    check_verdict(base / "course", "selftest", entries)


@pytest.mark.skipif(os.environ.get("D2L_TEST_VERDICT") != "1",
                    reason="grades every framework case (about 3.5 minutes on 2 cores: real "
                           "frameworks, bombs that run to their limits); `make test-verdict` runs "
                           "it. Two of them are graded by every `make test`, in test_grading_fair.py")
def test_every_framework_case(tmp_path):
    entries = []
    for fw in ("jax", "mxnet", "pytorch", "tensorflow"):
        entries += [dict(e, student=f"{fw}-{e['student']}", assignment=fw,
                         notebook=f"{fw}/{e['notebook']}") for e in manifest(fw)]
    subs = lay_out(tmp_path, entries, VERDICT, "")
    proc = subprocess.run(grade_cmd(sys.executable, subs, tmp_path / "course",
                                    make_source(tmp_path), timeout=120, memory=4, jobs=2),
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for fw in ("jax", "mxnet", "pytorch", "tensorflow"):
        check_verdict(tmp_path / "course", fw,
                      [dict(e, student=e["student"].split("-", 1)[1]) for e in entries
                       if e["assignment"] == fw], prefix=f"{fw}-")
