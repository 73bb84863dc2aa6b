"""Grade a folder of submissions: in parallel, each in a sandbox, into nbgrader's gradebook.

Submissions follow nbgrader's layout, SUBMISSIONS/<student>/<assignment>/exercises.ipynb, with
one assignment per framework (mxnet, pytorch, tensorflow, jax). Results go to the course folder
(course/ by default): gradebook.db, grades.csv (one row per student and assignment) and
feedback/<student>/<assignment>/exercises.html.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from html import escape
from pathlib import Path

from grading import sandbox
from grading.course import CELL_TIMEOUT, NOTEBOOK, OUTPUT_LIMIT, REPO, SOLUTIONS, configure
from grading.gradebook import merge_submission


@dataclass
class Result:
    student: str
    assignment: str
    success: bool
    error: str
    seconds: float


def find_submissions(folder: Path, source: Path = SOLUTIONS) -> list[tuple[str, str, Path]]:
    """(student, assignment, folder) for every SUBMISSIONS/<student>/<assignment>/ folder."""
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder")
    assignments = sorted(p.name for p in source.iterdir() if (p / f"{NOTEBOOK}.ipynb").is_file())
    found = []
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        for sub in sorted(p for p in student.iterdir() if p.is_dir() and not p.is_symlink()):
            if sub.name not in assignments:
                raise SystemExit(f"{sub}: unknown assignment {sub.name!r} (expected one of "
                                 f"{', '.join(assignments)})")
            found.append((student.name, sub.name, sub))
    return found


def _kernel_env(threads: int) -> dict[str, str]:
    """The d2l-io kernel's environment, with each kernel's thread pools sized to its share of
    the cores: frameworks default to one thread per core, and k kernels with k x cores
    threads on k cores spend their time switching instead of computing."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from install_kernel import ENV
    finally:
        sys.path.pop(0)
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    n = str(threads)
    limits = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
              "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n,
              "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                           f"intra_op_parallelism_threads={n}"}
    return dict(keep, **ENV, **limits)


def prepare_course(course: Path, assignments: set[str], students: set[str],
                   source: Path = SOLUTIONS) -> None:
    """Create or update the course gradebook: the assignments (from the solutions) and students."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    course.mkdir(parents=True, exist_ok=True)
    c = Config()
    configure(c, root=course, source=source)
    api = NbGraderAPI(CourseDirectory(config=c), config=c)
    with Gradebook(c.CourseDirectory.db_url, "d2l-io") as gb:
        known = {a.name for a in gb.assignments}
    for assignment in sorted(assignments - known):
        made = api.generate_assignment(assignment, force=True, create=True)
        if not made["success"]:
            raise SystemExit(f"nbgrader could not generate {assignment}: {made['error']}")
    with Gradebook(c.CourseDirectory.db_url, "d2l-io") as gb:
        for student in sorted(students):
            gb.update_or_create_student(student)


def _run_worker(ctx, job: dict, limit: float) -> tuple[bool, str]:
    """Grade one submission in a process forked from the server (nbgrader already imported);
    afterwards kill its whole session: the kernel and anything student code started."""
    from grading import worker

    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker.child, args=(job, send))
    proc.start()
    send.close()
    try:
        if receive.poll(limit):
            try:
                result = receive.recv()
            except EOFError:
                proc.join(5)
                return False, f"the grader stopped (exit {proc.exitcode})"
            return result["success"], result["error"]
        if not proc.is_alive():
            return False, f"the grader stopped (exit {proc.exitcode})"
        return False, f"grading took longer than {limit:.0f} s and was stopped"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.join(10)
        receive.close()


def _record_failure(course: Path, assignment: str, student: str, reason: str) -> None:
    """Zero for every graded cell, and a feedback page giving the reason."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "d2l-io") as gb:
        try:
            gb.remove_submission(assignment, student)
        except Exception:
            pass
        submission = gb.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
            for comment in notebook.comments:
                comment.auto_comment = f"Not graded: {reason}"
        gb.db.commit()
    page = course / "feedback" / student / assignment / f"{NOTEBOOK}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><body><h1>{escape(assignment)}: {escape(student)}</h1>"
                    f"<p>Score: 0. This submission could not be graded:</p>"
                    f"<pre>{escape(reason)}</pre></body></html>\n")


def export_csv(course: Path) -> Path:
    from nbgrader.apps import NbGraderAPI  # noqa: F401 (loads nbgrader's plugins)
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin
    from traitlets.config import Config

    out = course / "grades.csv"
    c = Config()
    c.CsvExportPlugin.to = str(out)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "d2l-io") as gb:
        CsvExportPlugin(config=c).export(gb)
    return out


def grade(submissions: Path, course: Path, jobs: int, timeout: int = CELL_TIMEOUT,
          output_limit: int = OUTPUT_LIMIT, progress: bool = True,
          source: Path = SOLUTIONS) -> list[Result]:
    from tqdm import tqdm

    # nbgrader runs `alembic` (its schema migrations) from PATH: use this environment's.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    why = sandbox.check_available()
    if why:
        raise SystemExit(f"cannot grade safely: {why}")
    submissions, course = submissions.resolve(), course.resolve()
    source = source.resolve()
    found = find_submissions(submissions, source)
    if not found:
        raise SystemExit(f"{submissions}: no submissions (expected <student>/<assignment>/{NOTEBOOK}.ipynb)")
    prepare_course(course, {a for _, a, _ in found}, {s for s, _, _ in found}, source)
    work_root = Path(tempfile.mkdtemp(prefix="d2l-grading-"))
    os.chmod(work_root, 0o700)
    template = work_root / "template.db"
    shutil.copyfile(course / "gradebook.db", template)
    hide = [str(SOLUTIONS), str(source), str(REPO / ".git"), str(course), str(submissions), str(work_root)]
    env = _kernel_env(max(1, (os.cpu_count() or 1) // jobs))
    # A notebook has some thirty cells; no honest submission comes near this.
    limit = 40 * timeout + 120
    # Workers fork from a server process that imported nbgrader once (seconds saved per
    # submission); the kernels they start find grading.sandbox through PYTHONPATH.
    os.environ["PYTHONPATH"] = str(REPO)
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "JAX_PLATFORMS"):
        os.environ[key] = env[key]
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["grading.worker"])
    results: list[Result] = []

    def one(i: int, student: str, assignment: str, folder: Path) -> Result:
        start = time.perf_counter()
        job = {"student": student, "assignment": assignment, "submission": str(folder),
               "work": str(work_root / f"{i:05d}"), "template_db": str(template),
               "source": str(source), "timeout": timeout, "output_limit": output_limit, "hide": hide, "kernel_env": env}
        ok, error = _run_worker(ctx, job, limit)
        return Result(student, assignment, ok, error, time.perf_counter() - start)

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool, \
                tqdm(total=len(found), unit="submission", disable=not progress) as bar:
            futures = {pool.submit(one, i, *item): i for i, item in enumerate(found)}
            for future in as_completed(futures):
                r = future.result()
                work = work_root / f"{futures[future]:05d}"
                merged = False
                if r.success:
                    try:
                        merge_submission(course / "gradebook.db", work / "course" / "gradebook.db",
                                         r.assignment, r.student)
                        src = work / "course" / "feedback" / r.student / r.assignment
                        dst = course / "feedback" / r.student / r.assignment
                        shutil.rmtree(dst, ignore_errors=True)
                        shutil.copytree(src, dst)
                        merged = True
                    except Exception as exc:
                        r.success, r.error = False, f"{type(exc).__name__}: {exc}"
                if not merged:
                    _record_failure(course, r.assignment, r.student, r.error)
                results.append(r)
                bar.set_postfix_str(f"{r.student}/{r.assignment} {'ok' if r.success else 'FAILED'}")
                bar.update()
                shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    export_csv(course)
    return results
