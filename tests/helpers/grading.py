"""What the grading tests share (test_grading*.py): the fixture classes, laying a class out
as nbgrader collects it, the `python -m grading grade` command line and what it leaves."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
"""The folder of the classes the grading tests hand in (hostile, fair, verdict, selftest)."""

FAIR = {fw: json.loads((FIXTURES / "fair" / fw / "manifest.json").read_text())
        for fw in sorted(p.name for p in (FIXTURES / "fair").iterdir() if p.is_dir())}
"""The fair class's manifest of each framework: framework -> [entry, ...]."""


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below `folder` (``__pycache__`` left out), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def lay_out(base: Path, entries: list[dict], fixtures: Path, assignment: str,
            source: Path | None = None) -> Path:
    """Lay `entries` out as base/submitted/<student>/<assignment>/, returning that folder."""
    subs = base / "submitted"
    for e in entries:
        folder = subs / e["student"] / e.get("assignment", assignment)
        folder.mkdir(parents=True)
        if e.get("notebook"):
            shutil.copyfile(fixtures / e["notebook"], folder / "exercises.ipynb")
        if e.get("symlink_to"):
            (folder / "exercises.ipynb").symlink_to(e["symlink_to"].replace("{source}", str(source)))
        (folder / "notes.txt").write_text(f"{e['student']}'s own file\n")
    return subs


def read_scores(course: Path) -> dict[tuple[str, str], float]:
    """The course's grades.csv as {(student, assignment): score}."""
    with open(course / "grades.csv") as f:
        return {(r["student_id"], r["assignment"]): float(r["score"]) for r in csv.DictReader(f)}


def make_source(base: Path) -> Path:
    """A source folder in `base`: a copy of the selftest fixture and the solutions' frameworks."""
    src = base / "source"
    src.mkdir()
    shutil.copytree(FIXTURES / "selftest", src / "selftest")
    for fw in FAIR:
        (src / fw).symlink_to(ROOT / "solutions" / fw)
    return src


def grade_cmd(python: str, subs: Path, course: Path, source: Path, timeout: int = 5,
              memory: float = 1, jobs: int = 3) -> list[str]:
    """The `python -m grading grade` command line grading `subs` into `course`."""
    # Three graders by default: the featherweight class waits on time limits more than it computes.
    return [python, "-m", "grading", "grade", str(subs), "--course", str(course), "--source",
            str(source), "--jobs", str(jobs), "--timeout", str(timeout), "--memory", str(memory)]
