"""The prose the four walkthroughs and the solutions share is written once, here, and a test
fails when a notebook drifts from it. The exercises are the book's, word for word (the book's
questions are in tests/fixtures/published_pytorch_exercises.txt)."""

from __future__ import annotations

import re

import jupytext
import pytest

from conftest import FRAMEWORKS, ROOT

PUBLISHED = (ROOT / "tests" / "fixtures" / "published_pytorch_exercises.txt").read_text()
QUESTIONS = [m[1] for m in re.finditer(r"^# \d\. (.+)$", PUBLISHED, re.M)]

# Paragraphs every walkthrough has, verbatim ({framework}: the folder name; {lock}: the lock of
# the framework's environment).
SHARED = [
    "Every step of the book's section is here, in its order. Where a call from the printed book "
    "behaves differently on the versions pinned in `{lock}`, a note says what changed.",
    "Both instances have the same parameters, so the same input `X` gives the same output.",
    "Work on them in the exercise workbook, `notebooks/{framework}/exercises.ipynb`.",
]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _markdown(path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "markdown"]


def test_the_book_has_three_questions():
    assert len(QUESTIONS) == 3 and QUESTIONS[0].startswith("Even if there is no need")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_walkthrough_shares_its_prose(framework):
    cells = _markdown(ROOT / "notebooks" / framework / "read-write.py")
    text = _flat("\n\n".join(cells))
    for paragraph in SHARED:
        lock = "requirements-mxnet.lock" if framework == "mxnet" else "requirements.lock"
        assert _flat(paragraph.format(framework=framework, lock=lock)) in text, paragraph[:60]
    exercises = next(c for c in cells if "## Exercises" in c).split("## Exercises", 1)[1]
    items = re.findall(r"^\d\. (.+?)(?=^\d\. |^\s*$|\Z)", exercises, re.M | re.S)
    assert [_flat(i) for i in items] == QUESTIONS


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_solutions_and_workbooks_ask_the_book_questions(framework):
    for path in (ROOT / "solutions" / framework / "exercises.py",
                 ROOT / "notebooks" / framework / "exercises.py"):
        cells = _markdown(path)
        for n, question in enumerate(QUESTIONS, 1):
            cell = next(c for c in cells if c.lstrip().startswith(f"## Exercise {n}"))
            assert _flat(cell.split("\n\n")[1]) == question, f"{path.relative_to(ROOT)}: exercise {n}"
