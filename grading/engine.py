"""Grading on Dask: one code path on one machine (an embedded LocalCluster, no server to start
and no dashboard) and on a cluster (`python -m grading grade ... --scheduler tls://host:8786`).

The client (`python -m grading grade`) is the only writer of the gradebook, grades.csv and the
feedback; it records each grade as it arrives. What travels to a worker is a `Job`: the
submission's regular files as bytes (a tar, at most MAX_SUBMISSION_BYTES), the assignment, the
run's seed and the run's `Limits`. A worker shares nothing with the client but the network: it
unpacks the job into a folder of its own, grades it in its own sandboxes
(grading.submission.grade_one), computes each assignment's references once per seed (and,
for JAX, its compiled code once: `_Worker.compile_cache`), and answers with bytes: a JSON
`Outcome` of at most MAX_RESULT_BYTES, which the client validates before it believes any of it
(a malformed or oversized one fails that submission, unrecorded).

Workers are admitted before any job is sent: each must report the client's environment (the
same installed packages in both environments, the same grader code, a working bubblewrap) and
a "sandbox" resource (how many submissions it grades at once). Start a worker with
`--preload grading.engine` and it declares that resource itself (see `dask_setup`). A worker
that dies mid-submission costs nothing: the scheduler gives the job to another admitted
worker, and the client records each submission once, whoever graded it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import grading
from grading import checks, sandbox
from grading.checks import Check
from grading.course import NOTEBOOK, SOLUTIONS
from grading.limits import (MAX_FEEDBACK_BYTES, MAX_RESULT_BYTES, MEMORY_LIMIT, Limits)
from grading.files import SubmissionError, unpack
from grading.submission import (Graded, ReferencesError, grade_one, kernel_env, references,
                                thread_env)

RESOURCE = "sandbox"  # the Dask worker resource one job holds while it is graded


# ------------------------------------------------------------------------------ what travels

@dataclass(frozen=True)
class Job:
    """One submission on its way to a worker."""

    student: str
    assignment: str
    origin: str          # the submission's folder on the client (for messages only)
    submission: bytes    # its regular files, as `pack` wrote them
    seed: int
    limits: Limits
    environment: str     # the client's Environment.digest: a worker with another refuses


@dataclass
class Outcome:
    """What a worker answers for one Job. `error`: the submission could not be graded (it
    scores 0, like a notebook that does not run); `refused`: the worker would not or could not
    grade it (not recorded: the next run grades it); `fatal`: the grader itself failed (the
    run stops)."""

    worker: str = ""
    checks: dict[str, list[Check]] = field(default_factory=dict)
    export_errors: dict[str, str] = field(default_factory=dict)
    notebook: bytes | None = None
    problem: str = ""
    error: str = ""
    refused: str = ""
    fatal: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "worker": self.worker,
            "checks": {gid: [vars(c) for c in cs] for gid, cs in self.checks.items()},
            "export_errors": self.export_errors,
            "notebook": None if self.notebook is None else base64.b64encode(self.notebook).decode(),
            "problem": self.problem, "error": self.error, "refused": self.refused,
            "fatal": self.fatal, "seconds": self.seconds, "timings": self.timings,
        }).encode()

    @classmethod
    def from_bytes(cls, data: object, limit: int = MAX_RESULT_BYTES) -> Outcome:
        """A worker's answer, validated: anything but the bounded format raises BadResult."""
        if not isinstance(data, bytes):
            raise BadResult(f"a {type(data).__name__}, not bytes")
        if len(data) > limit:
            raise BadResult(f"{len(data)} bytes, more than the {limit} a result may have")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
            raise BadResult(f"not UTF-8 JSON ({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise BadResult("not a JSON object")

        def text(key: str, cut: int = 2000) -> str:
            value = raw.get(key, "")
            if not isinstance(value, str):
                raise BadResult(f"{key} is not a string")
            return value[:cut]

        def number(value: object, what: str) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadResult(f"{what} is not a number")
            try:
                return float(value)
            except OverflowError:
                raise BadResult(f"{what} is out of range") from None

        checks_raw, errors_raw = raw.get("checks", {}), raw.get("export_errors", {})
        if not isinstance(checks_raw, dict) or not all(isinstance(v, list) for v in checks_raw.values()):
            raise BadResult("checks is not an object of lists")
        if not isinstance(errors_raw, dict) or not all(isinstance(v, str) for v in errors_raw.values()):
            raise BadResult("export_errors is not an object of strings")
        checks = {str(gid)[:200]: [c for c in map(Check.from_json, items) if c is not None]
                  for gid, items in checks_raw.items()}
        notebook = raw.get("notebook")
        if notebook is not None:
            if not isinstance(notebook, str):
                raise BadResult("notebook is not a string")
            try:
                notebook = base64.b64decode(notebook, validate=True)
            except ValueError:
                raise BadResult("notebook is not base64") from None
        timings = raw.get("timings", {})
        if not isinstance(timings, dict):
            raise BadResult("timings is not an object")
        return cls(text("worker", 300), checks,
                   {str(k)[:200]: v[:500] for k, v in errors_raw.items()}, notebook,
                   text("problem"), text("error"), text("refused"), raw.get("fatal") is True,
                   number(raw.get("seconds", 0.0), "seconds"),
                   {str(k)[:50]: number(v, "a timing") for k, v in timings.items()})

    def graded(self, job_student: str, assignment: str, folder: Path) -> Graded:
        """The client's Graded (the executed notebook written into `folder`, for feedback)."""
        notebook = None
        if self.notebook is not None:
            folder.mkdir(parents=True, exist_ok=True)
            notebook = folder / "executed.ipynb"
            notebook.write_bytes(self.notebook)
        return Graded(job_student, assignment, self.checks, self.export_errors, notebook,
                      self.problem, self.seconds, self.timings)


class BadResult(Exception):
    """A worker's answer that is not the bounded result format."""


# ------------------------------------------------------------------------ the same everywhere

@dataclass(frozen=True)
class Environment:
    """What must be the same on the client and every worker for a grade to mean the same, and
    whether a worker can grade at all."""

    packages: tuple[str, ...]   # name==version of what both environments can import
    code: str                   # sha256 of the grader's own code (grading, d2l_utils)
    python: str
    unable: str                 # "" if this process can grade (bubblewrap works, it may fork), else why not

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.packages, self.code, self.python]).encode()).hexdigest()

    def to_bytes(self) -> bytes:
        return json.dumps(vars(self)).encode()

    @classmethod
    def from_bytes(cls, data: object) -> Environment:
        try:
            raw = json.loads(data) if isinstance(data, bytes) and len(data) < 1 << 20 else None
            env = cls(tuple(str(p) for p in raw["packages"]), str(raw["code"]),
                      str(raw["python"]), str(raw["unable"]))
        except (TypeError, KeyError, ValueError, RecursionError):
            raise BadResult("not an environment report") from None
        return env

    def differences(self, other: Environment) -> list[str]:
        """How `other` (a worker's) differs from this one (the client's), most useful first."""
        out = []
        if other.unable:
            out.append(f"it cannot grade: {other.unable}")
        if other.python != self.python:
            out.append(f"Python {other.python}, here {self.python}")
        if other.packages != self.packages:
            extra = sorted(set(other.packages) - set(self.packages))
            missing = sorted(set(self.packages) - set(other.packages))
            out.append("its packages differ (" + "; ".join(
                filter(None, [extra and "there only: " + ", ".join(extra[:5]),
                              missing and "here only: " + ", ".join(missing[:5])])) + ")")
        if other.code != self.code:
            out.append(f"its grader code differs (sha256 {other.code[:12]}, here {self.code[:12]})")
        return out


def _distributions(site: list[str]) -> set[str]:
    """name==version of every distribution installed in these folders (its .dist-info)."""
    found = set()
    for folder in site:
        for info in Path(folder).glob("*.dist-info"):
            name, _, version = info.name[: -len(".dist-info")].partition("-")
            found.add(f"{name.lower().replace('_', '-')}=={version}")
    return found


_environment: Environment | None = None


def environment() -> Environment:
    """This process's Environment (computed once)."""
    global _environment
    if _environment is None:
        import d2l_utils

        import sysconfig

        from grading.submission import kernel, kernel_python

        # Where this Python imports packages from: its environment, and PYTHONPATH. (Not
        # sys.path as such: libraries add their vendored folders to it as they are imported.)
        extra = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                       *(p for p in extra if p and Path(p).is_dir())})
        mxnet_prefix = Path(kernel_python(kernel("mxnet"))).parent.parent
        mxnet_site = [str(p) for p in mxnet_prefix.glob("lib/python*/site-packages")]
        packages = sorted(_distributions(site)) + sorted(
            f"mxnet-env:{p}" for p in _distributions(mxnet_site))
        code = hashlib.sha256()
        for package in (grading, d2l_utils):
            base = Path(package.__file__).parent
            for path in sorted(base.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    code.update(f"{package.__name__}/{path.relative_to(base)}\0".encode())
                    code.update(path.read_bytes())
        _environment = Environment(tuple(packages), code.hexdigest(),
                                   ".".join(map(str, sys.version_info[:3])), _unable())
    return _environment


def _unable() -> str:
    """Why this process cannot grade ("" if it can): no working bubblewrap, or a daemonic
    process (a Dask nanny's worker by default), which may not start the runner's processes."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        return ("it runs as a daemonic process, which may not start the grader's processes: "
                "start it with DASK_DISTRIBUTED__WORKER__DAEMON=False (or --no-nanny)")
    return sandbox.check_available() or ""


def environment_report() -> bytes:
    """Run on each worker at admission (Client.run)."""
    return environment().to_bytes()


# ------------------------------------------------------------------------------ worker side

class _Worker:
    """A worker process's grading state: its work folder, each (assignment, seed)'s
    references and each assignment's compiled code, made once by the first job that needs
    them."""

    def __init__(self):
        self.root = work_root()
        self.lock = threading.RLock()  # (compile_cache asks for references while holding it)
        self.refs: dict[tuple[str, int], tuple[Path, Future]] = {}
        self.caches: dict[str, Future] = {}

    def references(self, assignment: str, seed: int, env: dict[str, str]) -> tuple[Path, Future]:
        with self.lock:
            if (assignment, seed) not in self.refs:
                out = self.root / "refs" / f"{assignment}-{seed}"
                done: Future = Future()

                def compute():
                    try:
                        references(assignment, seed, out, env=env)
                        done.set_result(None)
                    except BaseException as exc:  # noqa: BLE001  (handed to every job)
                        done.set_exception(exc)

                threading.Thread(target=compute, daemon=True).start()
                self.refs[(assignment, seed)] = (out, done)
            return self.refs[(assignment, seed)]

    def compile_cache(self, assignment: str, seed: int, env: dict[str, str]) -> Future:
        """The compiled code every kernel of `assignment` starts with (a Future of its folder,
        or of None): for an assignment whose checks ask for it (WARM_COMPILE_CACHE), what the
        solution's kernel compiled, graded once here like a submission; its score is not
        kept. A solution that cannot run leaves the cache empty, and grading goes on."""
        with self.lock:
            if assignment not in self.caches:
                done: Future = Future()
                self.caches[assignment] = done
                solution = SOLUTIONS / assignment
                if not (getattr(checks.load(assignment), "WARM_COMPILE_CACHE", False)
                        and (solution / f"{NOTEBOOK}.ipynb").is_file()):
                    done.set_result(None)
                    return done
                refs, refs_done = self.references(assignment, seed, env)

                def compute():
                    out = self.root / "compiled" / assignment
                    try:
                        grade_one("solution", assignment, solution, self.root / f"warm-{assignment}",
                                  refs, seed, env=env, refs_ready=refs_done.result,
                                  compile_cache=out, fill_cache=True)
                        done.set_result(out if out.is_dir() else None)
                    except Exception:  # noqa: BLE001  (an empty cache costs time, not grades)
                        done.set_result(None)
                    finally:
                        shutil.rmtree(self.root / f"warm-{assignment}", ignore_errors=True)

                threading.Thread(target=compute, daemon=True).start()
            return self.caches[assignment]

    def close(self) -> None:
        _remove_lock_last(self.root)  # what cannot go now, the next run's sweep removes


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _state() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        return _worker


def close_worker_state() -> None:
    """Remove this process's grading folders (the embedded cluster's, at the end of a run)."""
    global _worker
    with _worker_lock:
        if _worker is not None:
            _worker.close()
            _worker = None


_host_sandboxes = 0  # sandboxes of all admitted workers on this host (set by `admit`)


def share_host(sandboxes: int) -> None:
    """Run on each worker at admission: how many submissions all the admitted workers on its
    host grade at once, so that each sandbox's thread pools get their share of its cores."""
    global _host_sandboxes
    _host_sandboxes = sandboxes


def _this_worker():
    """The Dask worker running this task, or None (a direct call)."""
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _threads_per_sandbox() -> int:
    """This host's cores shared by the sandboxes that run on it at once."""
    worker = _this_worker()
    at_once = _host_sandboxes or (worker.state.nthreads if worker else 1)
    return max(1, (os.cpu_count() or 1) // at_once)


def sandbox_env(threads: int) -> dict[str, str]:
    """The variables every sandbox of a job starts from: the kernel's own, thread pools of
    `threads`, this environment's programs first on PATH."""
    return dict(kernel_env(), **thread_env(threads),
                PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", LANG="C.UTF-8")


def grade_job(job: Job) -> bytes:
    """Grade one Job on this worker: the bounded Outcome, as bytes. Never raises."""
    start, this = time.monotonic(), _this_worker()
    worker = this.address if this else "local"
    here = environment()
    if job.environment != here.digest or here.unable:
        why = here.unable or "its environment differs from the client's"
        return Outcome(worker, refused=f"worker {worker} refused the job: {why}").to_bytes()
    work = None
    try:
        state = _state()
        env = sandbox_env(_threads_per_sandbox())
        work = Path(tempfile.mkdtemp(dir=state.root, prefix="job-"))
        folder = work / "submitted"
        unpack(job.submission, folder)
        refs, ready = state.references(job.assignment, job.seed, env)
        compiled = state.compile_cache(job.assignment, job.seed, env).result()
        g = grade_one(job.student, job.assignment, folder, work / "run", refs, job.seed,
                      env=env, limits=job.limits, refs_ready=ready.result,
                      compile_cache=compiled)
        notebook = g.notebook.read_bytes() if g.notebook else None
        problem = g.problem
        if notebook is not None and len(notebook) > MAX_FEEDBACK_BYTES:
            notebook = None
            problem = problem or (f"the executed notebook is larger than {MAX_FEEDBACK_BYTES} "
                                  f"bytes: the feedback shows the scores only")
        outcome = Outcome(worker, g.checks, g.export_errors, notebook, problem, timings=g.timings)
    except SubmissionError as exc:
        outcome = Outcome(worker, error=str(exc))
    except ReferencesError as exc:
        outcome = Outcome(worker, error=str(exc), fatal=True)
    except Exception as exc:  # noqa: BLE001  (the worker's failure, not the submission's:
        # never scored; the next run grades it again)
        outcome = Outcome(worker, refused=f"the grader failed on {worker} "
                                          f"({type(exc).__name__}: {str(exc)[:300]})")
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    if work is not None:
        outcome.error = outcome.error.replace(str(work / "submitted"), job.origin)
        outcome.problem = outcome.problem.replace(str(work / "submitted"), job.origin)
    outcome.seconds = time.monotonic() - start
    return outcome.to_bytes()


def sandboxes_here(memory: int = MEMORY_LIMIT) -> int:
    """How many submissions this machine grades at once: one per core, and no more than its
    memory holds at the per-sandbox memory limit."""
    import psutil

    return max(1, min(os.cpu_count() or 1, psutil.virtual_memory().total // memory))


async def dask_setup(worker) -> None:
    """`dask worker ADDRESS --preload grading.engine`: declare the worker's "sandbox" resource
    (unless --resources gave one) and log its environment's problems at start."""
    if RESOURCE not in worker.state.total_resources:  # (before it registers with the scheduler)
        n = min(sandboxes_here(), worker.state.nthreads)
        worker.state.total_resources[RESOURCE] = worker.state.available_resources[RESOURCE] = n
    problem = environment().unable
    if problem:
        logging.getLogger("distributed.worker").error("grading.engine: cannot grade: %s", problem)


def dask_teardown(worker) -> None:
    close_worker_state()


def remove_dead_work_folders() -> None:
    """Remove the work folders of runs that were killed (their lock is free). Each run does
    so when it starts and again when it ends: a killed run's processes can hold its lock for
    a moment after it died, past the start of the run that follows.

    A killed run's runner and kernels die a moment after it, and may still write into its
    folder while it is removed: the lock file goes last, so that a folder left half-removed is
    still recognised as dead and removed by the next sweep. (A folder that has lost its lock
    otherwise, as earlier versions could leave one, is never a live run's: a run's folder has
    its lock from before it takes its name.)"""
    import fcntl

    base = Path(tempfile.gettempdir())

    def stale(p: Path) -> bool:  # (another process may rename or remove it meanwhile)
        try:
            return time.time() - p.stat().st_mtime > 60
        except OSError:
            return False

    starting = [p for p in base.glob(".d2l-starting-*") if stale(p)]
    for old in [*base.glob("d2l-grading-*"), *starting]:
        lock = old / ".lock"
        try:
            fd = os.open(lock, os.O_RDONLY)
        except FileNotFoundError:  # killed before its lock existed, or half-removed before
            if old in starting or _owned(old):
                _remove_lock_last(old)
            continue
        except OSError:  # not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live run
        finally:
            os.close(fd)
        _remove_lock_last(old)


def _owned(folder: Path) -> bool:
    """A folder (not a link to one) of this user's."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and stat.S_ISDIR(st.st_mode)


def _remove_lock_last(folder: Path) -> None:
    """Everything in `folder` but its lock file, then the lock and the folder, if all of the
    rest could be removed."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name == ".lock":
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        if {e.name for e in os.scandir(folder)} <= {".lock"}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / ".lock")
            os.rmdir(folder)


def work_root() -> Path:
    """A private folder for this process's sandboxes, locked while the process lives; folders
    of processes that were killed are removed first (remove_dead_work_folders)."""
    import fcntl

    base = Path(tempfile.gettempdir())
    # The sandboxed kernels' sockets live below it: a Unix socket path has at most 107 bytes.
    if len(str(base)) > 50:
        raise SystemExit(f"{base}: the temporary folder's path is too long for the kernels' "
                         f"sockets below it (at most 50 characters): set TMPDIR to a shorter one")
    remove_dead_work_folders()
    # Made under another name and locked before it takes the name other runs clean up.
    starting = Path(tempfile.mkdtemp(prefix=".d2l-starting-"))
    os.chmod(starting, 0o700)
    fd = os.open(starting / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends (the fd is never closed)
    root = base / starting.name.replace(".d2l-starting-", "d2l-grading-")
    starting.rename(root)
    return root


# ------------------------------------------------------------------------------ client side

@dataclass(frozen=True)
class TLS:
    """The certificate files of a TLS cluster (see README, "Grading on a cluster")."""

    ca: Path
    cert: Path
    key: Path

    def security(self):
        from distributed import Security

        for what, path in (("CA certificate", self.ca), ("certificate", self.cert), ("key", self.key)):
            if not path.is_file():
                raise SystemExit(f"{path}: no such file (the TLS {what})")
        return Security(tls_ca_file=str(self.ca), tls_client_cert=str(self.cert),
                        tls_client_key=str(self.key), require_encryption=True)


@contextlib.contextmanager
def cluster(scheduler: str | None, jobs: int, tls: TLS | None = None):
    """A Dask client: on an embedded LocalCluster with `jobs` sandboxes (scheduler None), or
    connected to the scheduler at `scheduler`."""
    from distributed import Client, LocalCluster

    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler is None:
        import dask

        # In-process (inproc:// comms). Its scheduler and worker always serve HTTP: here only
        # their health checks, on 127.0.0.1 at free ports (by default: every interface, the
        # scheduler on port 8787, with an API that can retire workers).
        with dask.config.set({"distributed.scheduler.http.routes": ["distributed.http.health"],
                              "distributed.worker.http.routes": ["distributed.http.health"]}), \
                LocalCluster(n_workers=1, threads_per_worker=jobs, processes=False,
                             dashboard_address=None, resources={RESOURCE: jobs},
                             scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                             worker_dashboard_address="127.0.0.1:0",
                             silence_logs=logging.ERROR) as local, Client(local) as client:
            try:
                yield client
            finally:
                close_worker_state()
        return
    try:
        client = Client(scheduler, security=tls.security() if tls else None, timeout="30s")
    except OSError as exc:
        raise SystemExit(f"{scheduler}: cannot reach the scheduler ({exc})") from None
    with client:
        yield client


def admit(client, report, wait: float = 30.0) -> list[str]:
    """The workers that may grade: those reporting the client's environment and a sandbox
    resource. One line per refused worker; SystemExit if none is left."""
    here = environment()
    deadline = time.monotonic() + wait
    while not client.scheduler_info()["workers"]:
        if time.monotonic() > deadline:
            raise SystemExit(f"no worker joined the scheduler within {wait:.0f} s")
        time.sleep(0.2)
    info = client.scheduler_info()["workers"]
    reports = client.run(environment_report, on_error="return")
    admitted = []
    for address in sorted(info):
        data = reports.get(address)
        try:
            problems = here.differences(Environment.from_bytes(data))
        except BadResult:
            problems = [f"no environment report ({str(data)[:200]})"]
        if not info[address].get("resources", {}).get(RESOURCE):
            problems.append(f'no "{RESOURCE}" resource: start it with --preload grading.engine '
                            f"or --resources {RESOURCE}=N")
        if problems:
            report(f"worker {address} refused: " + "; ".join(problems))
        else:
            admitted.append(address)
    if not admitted:
        raise SystemExit("no worker can grade: every worker was refused (see above)")
    host_of = {address: info[address].get("host", address) for address in admitted}
    hosts: dict[str, int] = {}
    for address in admitted:
        hosts[host_of[address]] = (hosts.get(host_of[address], 0)
                                   + int(info[address]["resources"][RESOURCE]))
    for address in admitted:
        client.run(share_host, hosts[host_of[address]], workers=[address])
    return admitted


def run_jobs(client, items: list, make_job, admitted: list[str], poll: float = 5.0):
    """Send a Job for each of `items` (made by `make_job(item)` when there is room: at most
    twice the admitted workers' sandboxes travel at once, so the client holds few submissions
    in memory) to the admitted workers; yield (item, Outcome or the reason there is none) as
    each arrives. A submission `make_job` refuses (SubmissionError) yields an Outcome with that
    error. SystemExit if every admitted worker has gone."""
    from distributed import wait

    info = client.scheduler_info()["workers"]
    window = max(4, 2 * sum(int(info[a].get("resources", {}).get(RESOURCE, 1)) for a in admitted
                            if a in info))
    queue, futures = list(reversed(items)), {}
    try:
        while queue or futures:
            while queue and len(futures) < window:
                item = queue.pop()
                try:
                    job = make_job(item)
                except SubmissionError as exc:
                    yield item, Outcome(error=str(exc))
                    continue
                future = client.submit(grade_job, job, resources={RESOURCE: 1}, workers=admitted,
                                       allow_other_workers=False, pure=False,
                                       key=f"grade-{job.assignment}-{os.urandom(8).hex()}")
                futures[future] = item
            try:
                done, _ = wait(list(futures), timeout=poll, return_when="FIRST_COMPLETED")
            except TimeoutError:
                if not set(client.scheduler_info()["workers"]) & set(admitted):
                    raise SystemExit(f"every admitted worker has gone: {len(futures) + len(queue)} "
                                     f"submission(s) not graded; run again to grade them") from None
                continue
            for future in done:
                item = futures.pop(future)
                try:
                    yield item, Outcome.from_bytes(future.result())
                except BadResult as exc:
                    yield item, f"the worker's result was refused ({exc}); not recorded"
                except Exception as exc:  # noqa: BLE001  (a lost task: the next run grades it)
                    yield item, f"not graded ({type(exc).__name__}: {exc}); not recorded"
    finally:
        for future in futures:
            future.cancel()
