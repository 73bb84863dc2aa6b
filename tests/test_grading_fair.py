"""`python -m grading grade` against the fair class (tests/fixtures/fair/<framework>): the real
assignments, answered from the student workbooks alone with other names, files and APIs than
the solutions (full marks), and partially (partial marks). The hostile class and the helpers
shared by both are in test_grading.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FRAMEWORKS, ROOT
from test_grading import FAIR, FIXTURES, _digest, _grade_cmd, _lay_out, _scores, _source


@pytest.fixture(scope="module")
def fair_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("fair")
    entries = []
    for fw, manifest in FAIR.items():
        for e in manifest:
            entries.append(dict(e, student=f"{fw}-{e['student']}", assignment=fw,
                                notebook=f"{fw}/{e['notebook']}"))
    subs = _lay_out(base, entries, FIXTURES / "fair", "")
    source = _source(base)
    before = _digest(subs)
    proc = subprocess.run(_grade_cmd(sys.executable, subs, base / "course", source, timeout=120,
                                     memory=4, jobs=2), cwd=ROOT, capture_output=True, text=True,
                          timeout=1500)
    return base, proc, entries, before, subs


def test_fair_answers_get_their_marks(fair_class):
    base, proc, entries, before, subs = fair_class
    assert set(FAIR) == set(FRAMEWORKS)
    for fw, manifest in FAIR.items():  # at least three other correct answers and a partial one
        assert sum(e["points"] == 10 and e["student"].startswith("alt") for e in manifest) >= 3, fw
        assert any(0 < e["points"] < 10 for e in manifest), fw
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    scores = _scores(base / "course")
    got = {e["student"]: scores.get((e["student"], e["assignment"])) for e in entries}
    assert got == {e["student"]: float(e["points"]) for e in entries}
    assert _digest(subs) == before
