"""`python -m grading grade` against the fair class (tests/fixtures/fair/<framework>): the real
assignments, answered from the student workbooks alone with other names, files and APIs than
the solutions (full marks), and partially (partial marks). Graded in the same batch, two of
the framework cases of tests/fixtures/verdict (see test_grading_verdict.py): a PyTorch
checkpoint kept only in the kernel's memory, and a TensorFlow export that exhausts the memory of
the checker that loads it (and only of the checker). The hostile class is in test_grading.py, the
helpers shared by all in tests/helpers/grading.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FRAMEWORKS, ROOT
from helpers.grading import FAIR, FIXTURES, digest, grade_cmd, lay_out, make_source, read_scores
from helpers.verdict import VERDICT, check_verdict
from helpers.verdict import manifest as verdict_manifest

pytestmark = pytest.mark.slow  # grades 18 real submissions in sandboxes: not in `make check`

# The framework cases of tests/fixtures/verdict graded here (the others are graded by
# test_grading_verdict.py's opt-in test, `make test-verdict`).
VERDICT_CASES = (("pytorch", "memory_checkpoint"), ("tensorflow", "bomb_checker"))


@pytest.fixture(scope="module")
def fair_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("fair")
    entries = []
    for fw, manifest in FAIR.items():
        for e in manifest:
            entries.append(dict(e, student=f"{fw}-{e['student']}", assignment=fw,
                                notebook=f"{fw}/{e['notebook']}"))
    subs = lay_out(base, entries, FIXTURES / "fair", "")
    verdict = [dict(e, student=f"{fw}-{e['student']}", assignment=fw)
               for fw, name in VERDICT_CASES for e in verdict_manifest(fw) if e["student"] == name]
    for fw, _ in VERDICT_CASES:
        lay_out(base / "verdict" / fw, [e for e in verdict if e["assignment"] == fw],
                VERDICT / fw, fw)
        for folder in (base / "verdict" / fw / "submitted").iterdir():
            folder.rename(subs / folder.name)
    source = make_source(base)
    before = digest(subs)
    proc = subprocess.run(grade_cmd(sys.executable, subs, base / "course", source, timeout=120,
                                    memory=4, jobs=2), cwd=ROOT, capture_output=True, text=True,
                          timeout=1500)
    return base, proc, entries, before, subs, verdict


def test_fair_answers_get_their_marks(fair_class):
    base, proc, entries, before, subs, _ = fair_class
    assert set(FAIR) == set(FRAMEWORKS)
    for fw, manifest in FAIR.items():  # at least three other correct answers and a partial one
        assert sum(e["points"] == 10 and e["student"].startswith("alt") for e in manifest) >= 3, fw
        assert any(0 < e["points"] < 10 for e in manifest), fw
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    scores = read_scores(base / "course")
    got = {e["student"]: scores.get((e["student"], e["assignment"])) for e in entries}
    assert got == {e["student"]: float(e["points"]) for e in entries}
    assert digest(subs) == before


def test_memory_checkpoint_and_checker_bomb_cost_only_their_exercise(fair_class):
    base, proc, _, _, _, verdict = fair_class
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(verdict) == len(VERDICT_CASES)
    for fw, _ in VERDICT_CASES:
        check_verdict(base / "course", fw, [dict(e, student=e["student"].split("-", 1)[1])
                                            for e in verdict if e["assignment"] == fw],
                      prefix=f"{fw}-")
    page = base / "course" / "feedback" / "tensorflow-bomb_checker" / "tensorflow" / "exercises.html"
    assert "the checker stopped (it reached its memory limit" in page.read_text()
