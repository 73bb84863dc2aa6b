"""Grading speed: `python -m grading grade` against nbgrader's own serial autograde.

    python benchmarks/grading_speed.py [--copies 8] [--assignment pytorch] [--jobs 1 2]

Makes N copies of the assignment's solution as N students' submissions, then times
(1) `nbgrader autograde ASSIGNMENT` (one process, one submission after another, nbgrader's
defaults, no sandbox) and (2) `python -m grading grade` with each --jobs value (sandboxed,
feedback and grades.csv included). Prints seconds, seconds per submission and the speedup
over nbgrader's serial autograde.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(cmd, cwd, env):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--assignment", default="pytorch")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--skip-serial", action="store_true")
    args = parser.parse_args()
    solution = REPO / "solutions" / args.assignment / "exercises.ipynb"
    from grading.submission import kernel_env

    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    env.update(kernel_env())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subs = tmp / "submitted"
        for i in range(args.copies):
            (subs / f"s{i:03d}" / args.assignment).mkdir(parents=True)
            shutil.copy(solution, subs / f"s{i:03d}" / args.assignment / "exercises.ipynb")
        if not args.skip_serial:
            course = tmp / "nbgrader-course"
            (course / "source" / args.assignment).mkdir(parents=True)
            shutil.copy(solution, course / "source" / args.assignment)
            shutil.copytree(subs, course / "submitted")
            common = [f"--CourseDirectory.root={course}", f"--db=sqlite:///{course / 'gradebook.db'}",
                      "--log-level=WARN"]
            run([sys.executable, "-m", "nbgrader", "generate_assignment", args.assignment, "--force",
                 *common], course, dict(env, D2L_SCRATCH=str(tmp / "scratch")))
            seconds = run([sys.executable, "-m", "nbgrader", "autograde", args.assignment, "--create",
                           *common], course, dict(env, D2L_SCRATCH=str(tmp / "scratch")))
            rows.append(("nbgrader autograde (serial)", seconds))
        for jobs in args.jobs:
            seconds = run([sys.executable, "-m", "grading", "grade", str(subs), "--course",
                           str(tmp / f"course-{jobs}"), "--jobs", str(jobs)], REPO, env)
            rows.append((f"python -m grading grade --jobs {jobs}", seconds))
    serial = rows[0][1] if not args.skip_serial else None
    print(f"{args.copies} copies of the {args.assignment} solution, {os.cpu_count()} cores")
    print(f"{'grader':<36}{'seconds':>9}{'s/submission':>14}{'speedup':>9}")
    for name, seconds in rows:
        speed = f"{serial / seconds:.2f}x" if serial else "-"
        print(f"{name:<36}{seconds:>9.1f}{seconds / args.copies:>14.2f}{speed:>9}")


if __name__ == "__main__":
    main()
