"""Generate the student workbooks from the solutions with nbgrader.

    python scripts/build_workbooks.py            # write notebooks/<framework>/exercises.{ipynb,py}
    python scripts/build_workbooks.py --check    # exit 1 if the committed workbooks are stale
    python scripts/build_workbooks.py --out DIR  # write DIR/<framework>/exercises.{ipynb,py}

`solutions/<framework>/exercises.ipynb` is the single source (nbgrader's "source" notebook).
nbgrader's generate_assignment replaces every `### BEGIN SOLUTION` ... `### END SOLUTION` region
with a stub, removes hidden tests, clears outputs and locks the test cells; the result is the
student workbook (nbgrader's "release"). Its py:percent twin is then written by jupytext.

Only the .ipynb is handed to nbgrader, in a temporary course folder: nbgrader copies every other
file of an assignment folder into the release as is, and the solutions' .py twins hold the
solutions in plain text. Nobody edits a student workbook by hand; tests/test_workbooks.py fails
when a committed workbook differs from what this script generates.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("mxnet", "pytorch", "tensorflow", "jax")
NOTEBOOK = "exercises"


def generate(frameworks: list[str], out_base: Path) -> list[Path]:
    """Write out_base/<framework>/exercises.{ipynb,py} for each framework; return the paths."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    # nbgrader runs `alembic` (its database migrations) from PATH: use this environment's.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
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
            shutil.copyfile(released, out_base / fw / source.name)
            written.append(out_base / fw / source.name)
    twins = [p.with_suffix(".py") for p in written]
    subprocess.run(
        # The same filters as pyproject.toml's [tool.jupytext], given explicitly because --check
        # writes outside the repository, where that configuration is not found.
        [sys.executable, "-m", "jupytext", "--quiet", "--to", "py:percent",
         "--opt", "notebook_metadata_filter=-all", "--opt", "cell_metadata_filter=nbgrader,tags,-all",
         *map(str, written)],
        cwd=ROOT, check=True,
    )
    return written + twins


def frameworks_with_solutions() -> list[str]:
    return [fw for fw in FRAMEWORKS if (ROOT / "solutions" / fw / f"{NOTEBOOK}.ipynb").exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed workbooks")
    parser.add_argument("--out", type=Path, help="write into this folder instead of notebooks/")
    args = parser.parse_args()
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) if args.check else (args.out or ROOT / "notebooks")
        for path in generate(frameworks_with_solutions(), base):
            committed = ROOT / "notebooks" / path.parent.name / path.name
            if args.check and not (committed.exists() and filecmp.cmp(path, committed, shallow=False)):
                stale.append(committed.relative_to(ROOT))
            elif not args.check:
                print(f"wrote {path}")
    if stale:
        print("stale student workbooks (run `make workbooks`):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
