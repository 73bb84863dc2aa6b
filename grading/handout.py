"""Build what students get: the notebooks, d2l_utils, the environment files, and a README and
Makefile of their own (grading/handout_files/: only what works in the handout).

Nothing from solutions/, tests/ or grading/ is included, and every file is checked before the
handout is written: no notebook may contain a solution region, a hidden-test region or an
output, and every student workbook must equal what nbgrader generates from the solutions
(``python -m grading workbooks --check``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from grading.course import REPO
from grading.workbooks import stale

# What a student needs to run the workbook, as it is in this repository.
INCLUDE = ["START.md", "setup.mk", "pyproject.toml", "requirements.in", "requirements.lock",
           "requirements-mxnet.in", "requirements-mxnet.lock", "environment.yml",
           "environment-mxnet.yml", ".gitignore", "d2l_utils", "notebooks"]
# The handout's own README.md and Makefile.
OWN = REPO / "grading" / "handout_files"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def check(folder: Path) -> list[str]:
    """Problems that would make `folder` unfit to hand out (empty when fine)."""
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if (rel.parts[0] in ("solutions", "grading", "course", "benchmarks") or path.suffix == ".db"
                or rel.parts[0] == "tests"):
            problems.append(f"{rel}: not for students")
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for marker in MARKERS:
            if marker in text:
                problems.append(f"{rel}: contains '{marker}'")
    return problems


def build(out: Path) -> Path:
    out = out.resolve()
    if out.exists():
        raise SystemExit(f"{out}: already exists; remove it or choose another --out")
    old = stale()
    if old:
        raise SystemExit("student workbooks are out of date (run `make workbooks`): "
                         + ", ".join(map(str, old)))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        stage = Path(tmp) / out.name
        for item in INCLUDE:
            src, dst = REPO / item, stage / item
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=ignore)
            else:
                shutil.copy2(src, dst)
        for src in OWN.iterdir():
            shutil.copy2(src, stage / src.name)
        problems = check(stage)
        if problems:
            raise SystemExit("refusing to write the handout:\n  " + "\n  ".join(problems))
        stage.rename(out)
    return out
