"""Check an assignment's grading on one notebook, without a sandbox (for assignment authors).

    python -m grading.local ASSIGNMENT NOTEBOOK [--source FOLDER]

Runs the same steps as `python -m grading grade` (notebook with the export code, references,
trusted checks) on a notebook you trust, in plain subprocesses, and prints every check and the
score. Student work is graded only by `python -m grading grade`, which isolates it.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from grading.course import NOTEBOOK, SOLUTIONS, points
from grading.limits import Limits
from grading.submission import grade_one, kernel_env, references, thread_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.local", description=__doc__.splitlines()[0])
    parser.add_argument("assignment")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--source", type=Path, default=SOLUTIONS)
    parser.add_argument("--timeout", type=int, default=60)
    args = parser.parse_args(argv)
    pts = points(args.source / args.assignment / f"{NOTEBOOK}.ipynb")
    seed = random.randrange(1, 2**31)
    env = dict(kernel_env(), **thread_env(2))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        references(args.assignment, seed, tmp / "refs", env=env, sandboxed=False)
        (tmp / "sub").mkdir()
        shutil.copyfile(args.notebook, tmp / "sub" / f"{NOTEBOOK}.ipynb")
        g = grade_one("local", args.assignment, tmp / "sub", tmp / "work", tmp / "refs", seed,
                      env=env, limits=Limits(cell_time=args.timeout), sandboxed=False)
        scores = g.scores(pts)
        total = sum(scores.values())
        for gid, got in scores.items():
            print(f"{gid}: {got:g}/{pts[gid]:g}")
            if gid in g.export_errors:
                print(f"    export did not run: {g.export_errors[gid]}")
            for c in g.checks.get(gid, []):
                print(f"    [{'x' if c.passed else ' '}] {c.name}" + (f" ({c.detail})" if c.detail else ""))
        if g.problem:
            print("problem:", g.problem)
        print(f"score: {total:g}/{sum(pts.values()):g}  (seed {seed}, kernel {g.timings['kernel']:.1f} s, "
              f"checks {g.timings['checks']:.1f} s)")
        if total < sum(pts.values()):
            log = tmp / "work" / "runner.log"
            if log.exists():
                print("--- runner log (tail) ---\n" + log.read_text(errors="replace")[-1500:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
