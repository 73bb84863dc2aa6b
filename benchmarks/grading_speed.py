"""Grading speed: `python -m grading grade` against nbgrader's own serial autograde.

    python benchmarks/grading_speed.py [--copies 8] [--assignment pytorch] [--jobs 1 2]
                                       [--workers 1 2] [--overhead 200]

Makes N copies of the assignment's solution as N students' submissions, then times
(1) `nbgrader autograde ASSIGNMENT` (one process, one submission after another, nbgrader's
defaults, no sandbox), (2) `python -m grading grade` with each --jobs value (sandboxed,
feedback and grades.csv included; its embedded Dask LocalCluster) and (3) the same command
sent to a Dask scheduler on 127.0.0.1 with each --workers number of worker processes (one
sandbox each). Prints seconds, seconds per submission, the speedup over nbgrader's serial
autograde, and the CPU time of every process each run started (`grading.sandbox.CpuMeter`: a
cgroup of its own, cgroup v1's cpuacct or v2's cpu.stat plus the sandboxes' cgroups, where this
user may make one; else only the processes the run waited for, marked "*"; "-" for the cluster
runs, whose workers are not the run's children).

Then Dask's own cost per submission (--overhead jobs): the same job (a packed submission in,
an Outcome with a 200 kB notebook out, unpacking included) run through a thread pool, as the
grader did before Dask, and through the embedded LocalCluster, plus starting and stopping it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grading.sandbox import CpuMeter

REPO = Path(__file__).resolve().parent.parent


def run(cmd, cwd, env) -> tuple[float, float, bool]:
    """Wall seconds, CPU seconds, and whether the CPU time covers every process."""
    meter = CpuMeter("bench")
    t0 = time.perf_counter()
    proc = subprocess.run(meter.wrap(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    cpu = meter.seconds()
    meter.close()
    return wall, cpu, meter.complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--assignment", default="pytorch")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--overhead", type=int, default=200, help="jobs for the overhead table (0: skip)")
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
        for workers in args.workers:
            with scheduler_with(workers, tmp / f"cluster-{workers}", env) as address:
                t0 = time.perf_counter()
                run([sys.executable, "-m", "grading", "grade", str(subs), "--course",
                     str(tmp / f"course-w{workers}"), "--scheduler", address], REPO, env)
                rows.append((f"... --scheduler ({workers} worker{'s' * (workers > 1)})",
                             time.perf_counter() - t0, None, True))
    serial = rows[0][1] if not args.skip_serial else None
    n = args.copies
    print(f"{n} copies of the {args.assignment} solution, {os.cpu_count()} cores")
    print(f"{'grader':<36}{'seconds':>9}{'s/submission':>14}{'speedup':>9}{'CPU-s':>9}{'CPU-s/sub':>11}")
    for name, seconds, cpu, whole in rows:
        speed = f"{serial / seconds:.2f}x" if serial else "-"
        mark = "" if whole else "*"
        cpus = f"{cpu:>8.1f}{mark:1}{cpu / n:>10.2f}{mark:1}" if cpu is not None else f"{'-':>9}{'-':>11}"
        print(f"{name:<36}{seconds:>9.1f}{seconds / n:>14.2f}{speed:>9}{cpus}")
    cluster = {name: seconds for name, seconds, cpu, _ in rows if cpu is None}
    if len(cluster) >= 2:
        (one, t1), *_, (many, tn) = cluster.items()
        print(f"{many} against {one}: {t1 / tn:.2f}x")
    if args.overhead:
        overhead(args.overhead)


@contextlib.contextmanager
def scheduler_with(workers: int, folder: Path, env: dict[str, str]):
    """A Dask scheduler on 127.0.0.1 and `workers` worker processes (one sandbox each, as the
    README starts them), stopped afterwards; yields the scheduler's address."""
    folder.mkdir(parents=True)
    dask = str(Path(sys.executable).parent / "dask")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(folder / "s.json")],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)]
    try:
        while not (folder / "s.json").is_file():
            time.sleep(0.1)
        time.sleep(0.3)
        address = json.loads((folder / "s.json").read_text())["address"]
        for i in range(workers):
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--preload", "grading.engine", "--local-directory", str(folder / f"w{i}")],
                cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()


def _fake_grade(job) -> bytes:
    """A job's transport without the grading: unpack the submission, answer an Outcome."""
    from grading.engine import Outcome
    from grading.files import unpack

    with tempfile.TemporaryDirectory() as tmp:
        unpack(job.submission, Path(tmp, "s"))
    return Outcome("w", notebook=b"x" * 200_000, seconds=1.0).to_bytes()


def overhead(n: int) -> None:
    """Seconds per job for the same job through a thread pool and the embedded LocalCluster."""
    from concurrent.futures import ThreadPoolExecutor

    from grading import engine
    from grading.files import pack
    from grading.limits import Limits

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "sub")
        folder.mkdir()
        shutil.copy(REPO / "solutions" / "pytorch" / "exercises.ipynb", folder)
        jobs = [engine.Job(f"s{i}", "pytorch", str(folder), pack(folder), 1, Limits(), "")
                for i in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for data in pool.map(_fake_grade, jobs):
            engine.Outcome.from_bytes(data)
    pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.cluster(None, 2) as client:
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        futures = [client.submit(_fake_grade, job, resources={engine.RESOURCE: 1}, pure=False)
                   for job in jobs]
        for future in futures:
            engine.Outcome.from_bytes(future.result())
        dask_s = time.perf_counter() - t1
    total = time.perf_counter() - t0
    print(f"\nDask's own cost, {n} jobs (a {len(jobs[0].submission) // 1000} kB submission in, "
          f"a 200 kB notebook out)")
    print(f"{'':<40}{'seconds':>9}{'ms/job':>9}")
    print(f"{'thread pool (before Dask)':<40}{pool_s:>9.2f}{pool_s / n * 1000:>9.1f}")
    print(f"{'LocalCluster, jobs only':<40}{dask_s:>9.2f}{dask_s / n * 1000:>9.1f}")
    print(f"{'LocalCluster start and stop':<40}{total - dask_s:>9.2f}{'':>9}")
    print(f"overhead per submission: {(dask_s - pool_s) / n * 1000:.1f} ms, plus "
          f"{started:.2f} s to start once (a 300-submission class: "
          f"{((dask_s - pool_s) / n + (total - dask_s) / 300) * 1000:.1f} ms each)")


if __name__ == "__main__":
    main()
