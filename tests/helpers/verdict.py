"""The verdict cases (tests/fixtures/verdict/): their manifests, and the check of a graded
course against them (test_grading_verdict.py, test_grading_fair.py)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.grading import FIXTURES

VERDICT = FIXTURES / "verdict"
"""The verdict cases' folder: selftest/ and one folder per framework, each with a manifest."""


def manifest(folder: str) -> list[dict]:
    """The manifest entries of the verdict cases in VERDICT / `folder`."""
    return json.loads((VERDICT / folder / "manifest.json").read_text())


def cell_scores(course: Path, assignment: str) -> dict[str, dict[str, float]]:
    """student -> {"ex1": points, ...} from the gradebook (automatic scores only)."""
    from nbgrader.api import Gradebook

    from grading.course import put_alembic_on_path

    put_alembic_on_path()
    found: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "d2l-io") as gb:
        for sub in gb.assignment_submissions(assignment):
            for grade in sub.notebooks[0].grades:
                ex = grade.name.split("-")[1]
                if grade.name.endswith("-tests"):
                    found.setdefault(sub.student.id, {})[ex] = float(grade.auto_score or 0)
    return found


def check_verdict(course: Path, assignment: str, entries: list[dict],
                  prefix: str = "") -> None:
    """Every entry's total and per-exercise points, as its manifest states them."""
    got = cell_scores(course, assignment)
    wrong = {}
    for e in entries:
        cells = got.get(prefix + e["student"])
        if cells is None:
            wrong[e["student"]] = "not graded"
            continue
        total = sum(cells.values())
        if "points" in e and total != e["points"]:
            wrong[e["student"]] = (cells, f"expected {e['points']}")
        if "at_most" in e and total > e["at_most"]:
            wrong[e["student"]] = (cells, f"at most {e['at_most']}")
        for ex, pts in e.get("per_exercise", {}).items():
            if pts is not None and ex in cells and cells[ex] != pts:
                wrong[e["student"]] = (cells, f"{ex}: expected {pts}")
    assert wrong == {}, "student: (points per exercise, expected)"
