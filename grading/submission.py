"""Grade one submission: run it in a sandboxed kernel, then check its exports in a fresh one.

1. The kernel sandbox (grading.sandbox) runs grading.runner on a copy of the submission: every
   code cell in order, and after each graded cell the grader's export code for it
   (grading.checks.<assignment>.EXPORTS). It can write only its own job folder. Exercises
   that save and load (RELOADS) are loaded afterwards in a second, fresh kernel with a box
   of its own (a fresh copy of the submission, an empty home).
2. When everything it started is gone, a check sandbox per graded cell runs grading.check on
   that cell's exported files against references computed by the grader (`references`),
   with no student code.
3. The result: per grade_id, the checks (name, passed, detail), the export's error if it did
   not run, and the executed notebook for the feedback.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import d2l_utils
import grading
from grading import checks
from grading.checks import Check
from grading.course import NOTEBOOK
from grading.files import SubmissionError, copy_submission
from grading.limits import MAX_SUBMISSION_BYTES, Limits
from grading.runner import ReloadJob, RunJob
from grading.sandbox import Sandbox
from d2l_utils.kernel import KERNELS, NAME
from d2l_utils.kernel import python as kernel_python


class ReferencesError(Exception):  # the grader's own failure, not a submission's
    """The references of an assignment could not be computed: nothing can be graded."""


@dataclass
class Graded:
    student: str
    assignment: str
    checks: dict[str, list[Check]]           # grade_id -> its checks, as the checker found them
    export_errors: dict[str, str]            # grade_id -> why its export did not run
    notebook: Path | None                    # the executed notebook (feedback)
    problem: str = ""                        # why the run stopped early, if it did
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def scores(self, points: dict[str, float]) -> dict[str, float]:
        """Points earned per grade_id (`points`: what each is worth); the one place a
        submission is scored."""
        return {gid: checks.score(worth, self.checks.get(gid, [])) for gid, worth in points.items()}


def kernel_env() -> dict[str, str]:
    """The d2l-io kernel's own variables (they silence framework log lines; both kernels
    have the same)."""
    from jupyter_client.kernelspec import KernelSpecManager

    return dict(KernelSpecManager().get_kernel_spec(NAME).env)


def kernel(assignment: str) -> str:
    """The kernel an assignment's notebook names: d2l-io-mxnet for MXNet, d2l-io otherwise."""
    return KERNELS.get(assignment, NAME)


@functools.cache
def interpreter(assignment: str) -> tuple[str, list[str]]:
    """The Python that runs an assignment's kernel and checks (its environment's), and the
    folders it needs to see (the environment and the installation it was made from)."""
    exe = kernel_python(kernel(assignment))
    out = subprocess.run([exe, "-I", "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return exe, sorted({out[0], out[1], str(Path(out[0]).resolve())})


def thread_env(threads: int) -> dict[str, str]:
    """Each sandbox's thread pools sized to its share of the cores: k kernels with k x cores
    threads on k cores spend their time switching instead of computing."""
    n = str(threads)
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
           "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n}
    if threads == 1:  # XLA has no thread-count flag; one thread is its only other setting
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    return env


def read_notebook(path: Path):
    """The submitted notebook, or SubmissionError naming the file and the problem."""
    import nbformat

    if not path.is_file() or path.is_symlink():
        raise SubmissionError(f"{path}: no notebook (expected {NOTEBOOK}.ipynb)")
    if path.stat().st_size > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{path}: larger than {MAX_SUBMISSION_BYTES} bytes")
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001  (JSON, encoding, schema: all "not a notebook")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SubmissionError(f"{path}: not a valid notebook ({type(exc).__name__}: {first})") from None
    return nb


class Plain:
    """Runs a command without a sandbox, in its own session, for at most `limit` seconds, and
    ends everything it started: the trusted steps of `grading.local`, for authors checking
    their own notebooks."""

    def __init__(self, env: dict[str, str], cwd: str, **_):
        self.env, self.cwd = env, cwd

    def run(self, command, *, limit, log=None):
        from grading.sandbox import Outcome, kill_tree, watch

        start = time.monotonic()
        with open(log, "wb") if log else open(os.devnull, "wb") as out:
            proc = subprocess.Popen(command, env=self.env, cwd=self.cwd, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            reason = watch(proc.pid, 2**62, 2**31, lambda: proc.poll() is not None,
                           deadline=start + limit, every=0.5)
            kill_tree(proc.pid)
            proc.wait()
        return Outcome(proc.returncode, reason, time.monotonic() - start)


CODE = "/run/d2l-code"  # where the sandboxes see this grader's d2l_utils and grading


def _code() -> dict[str, str]:
    """The grader's own d2l_utils and grading, wherever they are (a checkout in a home folder,
    an editable or a regular install), at CODE inside the sandboxes; PYTHONPATH=CODE makes
    them the ones imported."""
    return {f"{CODE}/{m.__name__}": str(Path(m.__file__).parent) for m in (d2l_utils, grading)}


def _trusted(command: list[str], assignment: str, *, ro: list[str], rw: list[str],
             env: dict[str, str], cwd: Path, log: Path, sandboxed: bool,
             limits: Limits = Limits()):
    """Run one of the grader's own steps (references, checks) on files it does not trust, with
    the assignment's Python: in a sandbox that sees `ro` read-only and `rw` read-write, or
    plainly for grading.local."""
    python, folders = interpreter(assignment)
    env = dict(env, PYTHONPATH=CODE) if sandboxed else dict(os.environ, **env)
    runner = (Sandbox(ro=[*folders, *ro], code=_code(), rw=rw, env=env, cwd=str(cwd),
                      memory=limits.memory, processes=limits.processes, file_size=limits.file_size)
              if sandboxed else Plain(env=env, cwd=str(cwd)))
    return runner.run([python, "-m", "grading.check", *command], limit=limits.check_time, log=log)


def _kernel_code() -> dict[str, str]:
    """What the kernel may import of ours: d2l_utils only (grading stays out of its sight)."""
    return {f"{CODE}/d2l_utils": str(Path(d2l_utils.__file__).parent)}


_forkserver = None


def _run_runner(job: Path, log: Path, env: dict[str, str], cwd: str, limit: float):
    """Run grading.runner on `job` in a process forked from a server that imported it once
    (about a second saved per submission); end it, and everything it started, by `limit`."""
    global _forkserver
    from grading.sandbox import Outcome, kill_tree, watch

    if _forkserver is None:
        _forkserver = multiprocessing.get_context("forkserver")
        _forkserver.set_forkserver_preload(["grading.runner"])
    from grading import runner

    start = time.monotonic()
    proc = _forkserver.Process(target=runner.child, args=(str(job), str(log), env, cwd))
    proc.start()
    reason = watch(proc.pid, 2**62, 2**31, lambda: not proc.is_alive(), deadline=start + limit,
                   every=0.5)
    kill_tree(proc.pid)
    proc.join()
    return Outcome(proc.exitcode if proc.exitcode is not None else -9, reason,
                   time.monotonic() - start)


def references(assignment: str, seed: int, out: Path, *, env: dict[str, str],
               sandboxed: bool = True) -> None:
    """Compute an assignment's references for `seed` into `out` (trusted code only)."""
    out.mkdir(parents=True, exist_ok=True)
    home = out.parent / f"{out.name}-home"
    home.mkdir(exist_ok=True)
    log = out.parent / f"{out.name}.log"
    outcome = _trusted(["reference", assignment, str(seed), str(out)], assignment, ro=[],
                       rw=[str(out), str(home)], cwd=home, log=log, sandboxed=sandboxed,
                       env=dict(env, HOME=str(home), MPLCONFIGDIR=str(home / ".matplotlib")))
    if outcome.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise ReferencesError(f"computing the references of {assignment} failed "
                            f"({outcome.killed_because or 'exit ' + str(outcome.returncode)}):\n{tail}")


COMPILE_CACHE = Path(".cache") / "jax"
"""Where, below its home, a sandboxed kernel keeps JAX's persistent compilation cache (every
compiled computation, however quick to compile). Each kernel's is its own: a copy of the
cache the solution's run left (grading.checks: WARM_COMPILE_CACHE), or empty."""


def grade_one(student: str, assignment: str, folder: Path, work: Path, refs: Path, seed: int, *,
              env: dict[str, str], limits: Limits = Limits(), sandboxed: bool = True,
              refs_ready=lambda: None, compile_cache: Path | None = None,
              fill_cache: bool = False) -> Graded:
    """Grade one submission. `compile_cache`: a folder of compiled code copied into each
    kernel's home before it starts; with `fill_cache` (the solution's run) it is written
    instead, from what the notebook's kernel compiled."""
    start = time.monotonic()
    module = checks.load(assignment)
    nb = read_notebook(folder / f"{NOTEBOOK}.ipynb")
    box, result_dir = work / "box", work / "result"
    sub, home, exports = box / "submission", box / "home", box / "exports"
    copy_submission(folder, sub)
    for d in (home / "scratch", exports, result_dir / "home"):
        d.mkdir(parents=True, exist_ok=True)
    graded_ids = list(module.EXPORTS)
    export_code = {gid: checks.kernel_code(module.EXPORTS[gid], helpers=module.HELPERS,
                                           out=str(exports / gid), seed=seed)
                   for gid in graded_ids}
    sealed = work / "exports"
    sealed.mkdir()

    def kernel_env_in(home: Path) -> dict[str, str]:
        # PYTHONSAFEPATH: the kernel starts without the submission's folder on sys.path, so a
        # student file cannot shadow a module the kernel imports before any cell runs.
        return dict(env, HOME=str(home), D2L_SCRATCH=str(home / "scratch"), PYTHONSAFEPATH="1",
                    IPYTHONDIR=str(home / ".ipython"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                    MPLCONFIGDIR=str(home / ".matplotlib"), XDG_CACHE_HOME=str(home / ".cache"),
                    JAX_COMPILATION_CACHE_DIR=str(home / COMPILE_CACHE),
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

    def start_cache(home: Path) -> None:
        """The kernel's own copy of the solution run's compiled code: what it adds or changes
        there reaches no other kernel, this submission's second one included."""
        if compile_cache is not None and not fill_cache and compile_cache.is_dir():
            shutil.copytree(compile_cache, home / COMPILE_CACHE)

    start_cache(home)

    python, folders = interpreter(assignment)
    # Loading halves (grading.checks: RELOADS) run in a second kernel with a box of its own:
    # a fresh copy of the submission, an empty home, and the sealed files at a new path.
    reloads = getattr(module, "RELOADS", {})

    def box_for(folder: Path, home: Path, cwd: Path) -> Sandbox | None:
        """The kernel's sandbox: the environment read-only, its own folder read-write."""
        if not sandboxed:
            return None
        return Sandbox(ro=folders, code=_kernel_code(), rw=[str(folder)],
                       env=dict(kernel_env_in(home), PYTHONPATH=CODE), cwd=str(cwd),
                       memory=limits.memory, processes=limits.processes,
                       file_size=limits.file_size)

    reload = None
    if reloads:
        box2 = work / "box2"
        sub2, home2, moved = box2 / "submission", box2 / "home", box2 / "moved"
        copy_submission(folder, sub2)
        for d in (home2 / "scratch", box2 / "exports", moved):
            d.mkdir(parents=True, exist_ok=True)
        start_cache(home2)
        reload = ReloadJob(
            codes={gid: checks.kernel_code(reloads[gid].body, helpers=module.HELPERS,
                                           out=str(box2 / "exports" / gid), seed=seed,
                                           saved=str(moved / gid)) for gid in reloads},
            paths={gid: list(reloads[gid].paths) for gid in reloads},
            saved_dir=str(work / "saved"), moved=str(moved), exports_dir=str(box2 / "exports"),
            runtime=str(box2 / "runtime"), pinned=str(work / "sockets2"), cwd=str(sub2),
            sandbox=box_for(box2, home2, sub2))
    job = RunJob(notebook=str(sub / f"{NOTEBOOK}.ipynb"), out_notebook=str(work / "executed.ipynb"),
                 log=str(work / "exports.json"), exports_dir=str(exports), exports=export_code,
                 sealed_dir=str(sealed), runtime=str(box / "runtime"), kernel=kernel(assignment),
                 pinned=str(work / "sockets"), cwd=str(sub), python=python,
                 timeout=limits.cell_time, grace=limits.grace, output_limit=limits.output,
                 sandbox=box_for(box, home, sub), reload=reload)
    (work / "job.json").write_text(job.to_json())
    n_cells = sum(c.cell_type == "code" for c in nb.cells) + len(graded_ids)
    if reload:  # the fresh kernel runs the notebook again, at most up to its last grade cell
        n_cells *= 2
    limit = n_cells * (limits.cell_time + limits.grace + 10) + 180
    # The runner is ours (trusted): it runs outside the sandbox and starts the kernel inside.
    runner_env = env if sandboxed else dict(os.environ, **kernel_env_in(home))
    t0 = time.monotonic()
    outcome = _run_runner(work / "job.json", work / "runner.log", runner_env, str(work), limit)
    t1 = time.monotonic()
    if fill_cache and compile_cache is not None and (home / COMPILE_CACHE).is_dir():
        shutil.copytree(home / COMPILE_CACHE, compile_cache, dirs_exist_ok=True)
    problem = outcome.killed_because and f"the sandbox was stopped: {outcome.killed_because}"
    try:
        log = json.loads((work / "exports.json").read_text())
    except (OSError, ValueError):
        log = {}
    if not problem and outcome.returncode != 0:
        tail = (work / "runner.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
        problem = f"the notebook could not be run: {tail[0][:300]}"
    export_errors = {}
    for gid in graded_ids:
        entry = log.get(gid) if isinstance(log.get(gid), dict) else {"ran": False, "error": "not run"}
        if not entry.get("ran"):
            why = str(entry.get("error", "not run"))
            if why == "not run" and problem:
                why = f"not run: {problem}"
            export_errors[gid] = why
    # The trusted checks: the sealed exports and the references, read-only; no student code.
    # One process per graded cell: a file that bombs its checker costs that cell only.
    refs_ready()
    found = {}
    for gid in graded_ids:
        result_file = result_dir / f"{gid}.json"
        check_out = _trusted(["check", assignment, str(sealed), str(refs), str(result_file), gid],
                             assignment, ro=[str(sealed), str(refs)], rw=[str(result_dir)],
                             cwd=result_dir, log=result_dir / f"{gid}.log", sandboxed=sandboxed,
                             limits=limits, env=dict(env, HOME=str(result_dir / "home"),
                                      MPLCONFIGDIR=str(result_dir / "home")))
        got = read_result(result_file)
        if got is None:
            why = check_out.killed_because or f"exit {check_out.returncode}"
            got = [Check("the exports could be checked", False, f"the checker stopped ({why})")]
        found[gid] = got
        shutil.rmtree(result_dir / "home", ignore_errors=True)
        (result_dir / "home").mkdir()
    executed = work / "executed.ipynb"
    return Graded(student, assignment, found, export_errors,
                  executed if executed.is_file() else None, problem,
                  time.monotonic() - start, {"kernel": t1 - t0, "checks": time.monotonic() - t1})


def read_result(path: Path) -> list[Check] | None:
    """One graded cell's checks from the checker, validated; None if missing or malformed."""
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(items, list):
        return None
    return [c for c in map(Check.from_json, items) if c is not None] or None
