"""Generate the student workbooks from the solutions with nbgrader.

    python -m grading workbooks            # write notebooks/<framework>/exercises.{ipynb,py}
    python -m grading workbooks --check    # exit 1 if the committed workbooks are stale
    python -m grading workbooks --out DIR  # write DIR/<framework>/exercises.{ipynb,py}

`solutions/<framework>/exercises.ipynb` is the single source (nbgrader's "source" notebook).
nbgrader's generate_assignment replaces every `### BEGIN SOLUTION` ... `### END SOLUTION` region
with a stub, removes hidden tests, clears outputs and locks the test cells; the result is the
student workbook (nbgrader's "release"). Each answer cell then gets JupyterLab's
`raises-exception` tag, so that *Run All* goes on past an exercise not answered yet, and the
workbook and its py:percent twin are written exactly as saving them in JupyterLab writes them
(d2l_utils.lab.canonical): opening and saving a workbook changes no byte.

Only the .ipynb is handed to nbgrader, in a temporary course folder: nbgrader copies every other
file of an assignment folder into the release as is, and the solutions' .py twins hold the
solutions in plain text. Nobody edits a student workbook by hand; tests/test_workbooks.py fails
when a committed workbook differs from what this module generates.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

import nbformat

from d2l_utils import FRAMEWORKS
from d2l_utils.lab import canonical
from grading.course import NOTEBOOK, REPO as ROOT, put_alembic_on_path


def generate(frameworks: list[str], out_base: Path) -> list[Path]:
    """Write out_base/<framework>/exercises.{ipynb,py} for each framework; return the paths."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    put_alembic_on_path()
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        c = Config()
        c.CourseDirectory.root = str(course)
        c.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
        c.Application.log_level = "WARN"
        api = NbGraderAPI(CourseDirectory(config=c), config=c)
        for fw in frameworks:
            source = ROOT / "solutions" / fw / f"{NOTEBOOK}.ipynb"
            (course / "source" / fw).mkdir(parents=True)
            shutil.copy2(source, course / "source" / fw / source.name)
            result = api.generate_assignment(fw, force=True, create=True)
            released = course / "release" / fw / source.name
            if not result["success"] or not released.exists():
                raise SystemExit(f"nbgrader failed on {source.relative_to(ROOT)}:\n{result['log']}")
            (out_base / fw).mkdir(parents=True, exist_ok=True)
            nb = nbformat.read(released, as_version=4)
            tag_answers(nb)
            nbformat.write(nb, out_base / fw / source.name)
            written.append(out_base / fw / source.name)
    canonical(written)
    return written + [p.with_suffix(".py") for p in written]


def tag_answers(nb) -> None:
    """Tag every answer code cell (a placeholder until the student answers) raises-exception:
    JupyterLab's Run All then does not stop there. Later cells that need the answer still fail;
    tests/test_workbooks.py checks that no cell of another exercise does."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            tags = cell.metadata.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")


def frameworks_with_solutions() -> list[str]:
    return [fw for fw in FRAMEWORKS if (ROOT / "solutions" / fw / f"{NOTEBOOK}.ipynb").exists()]


def stale(frameworks: list[str] | None = None) -> list[Path]:
    """The committed workbooks (and twins) that differ from what nbgrader generates now."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(frameworks or frameworks_with_solutions(), Path(tmp)):
            committed = ROOT / "notebooks" / path.parent.name / path.name
            if not (committed.exists() and filecmp.cmp(path, committed, shallow=False)):
                found.append(committed.relative_to(ROOT))
    return found


def main(check: bool, out: Path | None) -> int:
    if check:
        old = stale()
        if old:
            print("stale student workbooks (run `make workbooks`):", *old, sep="\n  ")
            return 1
        print("the student workbooks are up to date")
        return 0
    for path in generate(frameworks_with_solutions(), out or ROOT / "notebooks"):
        print(f"wrote {path}")
    return 0
