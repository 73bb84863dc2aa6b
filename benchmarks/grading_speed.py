"""Grading speed: `python -m grading grade` against nbgrader's own serial autograde.

    python benchmarks/grading_speed.py [--copies 8] [--assignment pytorch] [--jobs 1 2]

Makes N copies of the assignment's solution as N students' submissions, then times
(1) `nbgrader autograde ASSIGNMENT` (one process, one submission after another, nbgrader's
defaults, no sandbox) and (2) `python -m grading grade` with each --jobs value (sandboxed,
feedback and grades.csv included). Prints seconds, seconds per submission, the speedup
over nbgrader's serial autograde, and the CPU time of every process each run started (a
cgroup of its own: cgroup v1's cpuacct or v2's cpu.stat, where this user may make one; else
only the processes the run waited for, marked "*").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _cgroup() -> tuple[Path, str] | None:
    """A fresh cgroup to count a run's CPU in, and its usage file; None where none can be made."""
    name = f"d2l-bench-{os.getpid()}-{time.monotonic_ns()}"
    for base, usage in ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage"),  # v1
                        (Path("/sys/fs/cgroup"), "cpu.stat")):  # v2
        if (base / usage).exists() or (base / "cgroup.controllers").exists():
            try:
                (base / name).mkdir()
            except OSError:
                continue
            return base / name, usage
    return None


def _cpu_seconds(group: Path, usage: str) -> float:
    text = (group / usage).read_text()
    if usage == "cpuacct.usage":
        return int(text) / 1e9
    return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6


def run(cmd, cwd, env) -> tuple[float, float, bool]:
    """Wall seconds, CPU seconds, and whether the CPU time covers every process."""
    group = _cgroup()
    join = None
    if group:
        def join():  # in the child, before exec: it and everything it starts are counted
            (group[0] / "cgroup.procs").write_text(str(os.getpid()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=join)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    if group:
        cpu = _cpu_seconds(*group)
        for _ in range(50):  # emptied once the run's last processes are reaped
            try:
                group[0].rmdir()
                break
            except OSError:
                time.sleep(0.1)
        return wall, cpu, True
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), False


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
            measured = run([sys.executable, "-m", "nbgrader", "autograde", args.assignment, "--create",
                            *common], course, dict(env, D2L_SCRATCH=str(tmp / "scratch")))
            rows.append(("nbgrader autograde (serial)", *measured))
        for jobs in args.jobs:
            measured = run([sys.executable, "-m", "grading", "grade", str(subs), "--course",
                            str(tmp / f"course-{jobs}"), "--jobs", str(jobs)], REPO, env)
            rows.append((f"python -m grading grade --jobs {jobs}", *measured))
    serial = rows[0][1] if not args.skip_serial else None
    n = args.copies
    print(f"{n} copies of the {args.assignment} solution, {os.cpu_count()} cores")
    print(f"{'grader':<36}{'seconds':>9}{'s/submission':>14}{'speedup':>9}{'CPU-s':>9}{'CPU-s/sub':>11}")
    for name, seconds, cpu, whole in rows:
        speed = f"{serial / seconds:.2f}x" if serial else "-"
        mark = "" if whole else "*"
        print(f"{name:<36}{seconds:>9.1f}{seconds / n:>14.2f}{speed:>9}{cpu:>8.1f}{mark:1}{cpu / n:>10.2f}{mark:1}")


if __name__ == "__main__":
    main()
