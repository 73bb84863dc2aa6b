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


def _env() -> dict[str, str]:
    # nbgrader runs `alembic` (its database migrations) from PATH: use this environment's.
    bindir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))


def generate(framework: str, out_dir: Path) -> list[Path]:
    """Write out_dir/exercises.ipynb and its .py twin for one framework; return the paths."""
    source = ROOT / "solutions" / framework / f"{NOTEBOOK}.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        (course / "source" / framework).mkdir(parents=True)
        shutil.copy2(source, course / "source" / framework / source.name)
        proc = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", framework, "--force",
             f"--CourseDirectory.root={course}", f"--db=sqlite:///{course / 'gradebook.db'}",
             "--log-level=WARN"],
            cwd=course, env=_env(), capture_output=True, text=True,
        )
        released = course / "release" / framework / source.name
        if proc.returncode != 0 or not released.exists():
            raise SystemExit(f"nbgrader failed on {source.relative_to(ROOT)}:\n{proc.stderr}")
        out_dir.mkdir(parents=True, exist_ok=True)
        ipynb = out_dir / source.name
        shutil.copyfile(released, ipynb)
    py = ipynb.with_suffix(".py")
    subprocess.run(
        # The same filters as pyproject.toml's [tool.jupytext], given explicitly because --check
        # writes outside the repository, where that configuration is not found.
        [sys.executable, "-m", "jupytext", "--quiet", "--to", "py:percent",
         "--opt", "notebook_metadata_filter=-all", "--opt", "cell_metadata_filter=nbgrader,tags,-all",
         "--output", str(py), str(ipynb)],
        cwd=ROOT, env=_env(), check=True,
    )
    return [ipynb, py]


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
        for fw in frameworks_with_solutions():
            for path in generate(fw, base / fw):
                committed = ROOT / "notebooks" / fw / path.name
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
