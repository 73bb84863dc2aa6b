"""The featherweight selftest course of test_course.py and test_formgrader_browser.py: the
released notebook, the students' answers, and a collected submission made without the
exchange."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "selftest" / "exercises.ipynb"
"""The selftest assignment's notebook (its source, as nbgrader generates the release from it)."""

ANSWERS = {
    "ex1": ("import json\n\ndef save_numbers(path, numbers):\n    with open(path, 'w') as f:\n"
            "        json.dump([float(x) for x in numbers], f)\n\ndef load_numbers(path):\n"
            "    with open(path) as f:\n        return json.load(f)\n"),
    "ex2": "def mean(numbers):\n    return sum(numbers) / len(numbers)\n",
    "ex2-wrong": "import statistics\n\ndef mean(numbers):\n    return statistics.median(numbers)\n",
    "ex3": "A file outlives the kernel: another process can load it later.",
    "ex3-changed": "A file can be moved to another machine and loaded there; memory cannot.",
}
"""The students' answers, by name: the code of exercises 1 and 2, the written answer of 3."""


def submit_as(subs: Path, student: str, ex2: str = "ex2", timestamp: str | None = None,
              ex3: str | None = None) -> Path:
    """A collected submission as nbgrader lays it out, without the exchange (the written answer
    of exercise 3 left as released unless `ex3` names one of ANSWERS)."""
    folder = subs / student / "selftest"
    folder.mkdir(parents=True)
    nb = json.loads(FIXTURE.read_text())
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        text = {"selftest-ex1-code": ANSWERS["ex1"], "selftest-ex2-code": ANSWERS[ex2],
                "selftest-ex3-answer": ANSWERS.get(ex3)}.get(gid)
        if text is not None:
            cell["source"] = text
    (folder / "exercises.ipynb").write_text(json.dumps(nb))
    if timestamp is not None:
        (folder / "timestamp.txt").write_text(timestamp)
    return folder
