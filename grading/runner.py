"""Run a student notebook cell by cell, with the grader's export code after each graded cell.

    python -m grading.runner JOB.json

The runner is the grader's (trusted) side of a notebook run; only the kernel is sandboxed: it
is started in bubblewrap (grading.sandbox) and reached over Unix sockets (ZeroMQ's ipc
transport), since it has no network. JOB.json (a RunJob) gives the notebook, where the executed notebook
and the export log go, the export code per grade_id (grading.checks), the sandbox, the
per-cell time limit and the output cap. After each export cell the runner moves what it wrote
out of the kernel's reach ("sealed"), so nothing the kernel does later can change it. The
executed notebook becomes the student's feedback; the export log says, per grade_id, whether
its export ran and, if not, why (first line of the error). Both are written after every cell.

Saving and loading in two processes: a grade_id with a *reload* (RunJob.reload) is graded
in two halves. Its export code in the kernel only saves (the student's save function writes
into the export folder), and that folder is sealed aside. When the notebook is done and its
kernel gone, a second, fresh kernel in a fresh copy of the submission (its own home, /tmp and
scratch) runs the notebook's code cells up to that grade cell, then the reload code, handed a
copy of the sealed files at a new path: what the student's load function restores there can
only have come from those files.

Limits: a cell that runs past its time limit is interrupted; if the kernel does not answer
within a grace period (a loop that swallows KeyboardInterrupt) it is killed, and that cell and
every later one score zero with the reason. A cell keeps at most `output_limit` bytes of
output. A kernel that dies (os._exit, the memory limit) ends the run the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import stat
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nbformat
import psutil
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_output

from grading.sandbox import Sandbox, kill_tree, watch


@dataclass(frozen=True)
class ReloadJob:
    """The loading halves of a run: their code per grade_id (grading.checks.kernel_code), the
    paths each save was given, where the saving halves are sealed (saved_dir), where the fresh
    kernel finds their copies (moved), and the fresh kernel's own folders and sandbox."""

    codes: dict[str, str]
    paths: dict[str, list[str]]
    saved_dir: str
    moved: str
    exports_dir: str
    runtime: str
    pinned: str
    cwd: str
    sandbox: Sandbox | None


@dataclass(frozen=True)
class RunJob:
    """What the grader hands the runner (JOB.json): the notebook and where its results go, the
    export code per grade_id, the kernel (name, or Python and sandbox), the limits of a cell."""

    notebook: str
    out_notebook: str
    log: str
    exports_dir: str
    exports: dict[str, str]
    sealed_dir: str
    runtime: str
    kernel: str
    pinned: str
    cwd: str
    python: str
    timeout: int
    grace: int
    output_limit: int
    sandbox: Sandbox | None = None
    reload: ReloadJob | None = None
    startup_timeout: int = 120

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunJob:
        raw = json.loads(text)
        box = lambda d: Sandbox(**d) if d else None  # noqa: E731
        reload = raw.pop("reload")
        if reload:
            reload = ReloadJob(**dict(reload, sandbox=box(reload["sandbox"])))
        return cls(**dict(raw, sandbox=box(raw["sandbox"]), reload=reload))

SKIPPED = ("(Not run by the grader: the checks in the table above decide the score. Run this "
           "cell yourself in JupyterLab to see the visible tests.)\n")


def _error(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue,
                      traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class CappedClient(NotebookClient):
    """nbclient that keeps at most `output_limit` bytes of output per cell."""

    def __init__(self, nb, output_limit: int, **kw):
        super().__init__(nb, **kw)
        self.output_limit = output_limit
        self._used: dict[int, int] = {}  # bytes of output so far, per cell index

    def output(self, outs, msg, display_id, cell_index):
        used = self._used.get(cell_index, 0)
        if used > self.output_limit:
            return None
        used += len(json.dumps(msg.get("content", {})))
        self._used[cell_index] = used
        if used > self.output_limit:
            outs.append(new_output("stream", name="stderr", text=(
                f"\n[output truncated: this cell printed more than {self.output_limit} bytes]\n")))
            return None
        return super().output(outs, msg, display_id, cell_index)


def grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def plan(nb, exports: dict[str, str]) -> list[tuple[str, int | str]]:
    """The order of work: ("cell", index) for every code cell, ("export", grade_id) right after
    the cell of that grade_id, and at the end for any grade_id whose cell is missing.

    The graded cells themselves hold the visible tests, which decide nothing (the trusted
    checks do) and can take seconds (the PyTorch tests start a fresh Python): they are marked
    ("skip", index) instead of run; students run them in JupyterLab."""
    steps, done = [], set()
    for i, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        if cell.cell_type == "code":
            steps.append(("skip" if gid in exports else "cell", i))
        if gid in exports and gid not in done:
            steps.append(("export", gid))
            done.add(gid)
    steps += [("export", gid) for gid in exports if gid not in done]
    return steps


def kernel_manager(job: RunJob):
    """The kernel's manager: the assignment's kernel as installed (job.sandbox is None:
    authors' local runs), or the same kernel (job.python) inside the sandbox, reached over
    ipc sockets."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    if not job.sandbox:
        return AsyncKernelManager(kernel_name=job.kernel), None
    from grading.sandbox import Confinement

    class PinnedSockets(AsyncKernelManager):
        """The kernel binds its sockets in a folder it can write, so later it could swap them
        for links to any socket of this machine. Once they exist, and before any student code
        runs, the runner opens each one (O_PATH, no links followed) and connects through
        /proc/self/fd links in a folder of its own: always the kernel's own sockets."""

        async def _async_post_start_kernel(self, **kw):
            ports = [self.shell_port, self.iopub_port, self.stdin_port, self.hb_port,
                     self.control_port]
            deadline = time.monotonic() + job.startup_timeout
            while not all(os.path.exists(f"{self.ip}-{p}") for p in ports):
                if time.monotonic() > deadline or (await self.provisioner.poll()) is not None:
                    raise RuntimeError("the kernel did not start")
                await asyncio.sleep(0.05)
            pinned = Path(job.pinned)
            pinned.mkdir(parents=True, exist_ok=True)
            for p in ports:
                fd = os.open(f"{self.ip}-{p}", os.O_PATH | os.O_NOFOLLOW)
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    raise RuntimeError("the kernel's sockets are not sockets")
                os.symlink(f"/proc/{os.getpid()}/fd/{fd}", pinned / f"k-{p}")
            self.ip = str(pinned / "k")
            # Only now the manager's own control connection (interrupts, shutdown).
            await super()._async_post_start_kernel(**kw)

    box = job.sandbox
    limits = Confinement(box.memory, box.processes, box.file_size)
    runtime = Path(job.runtime)
    runtime.mkdir(parents=True, exist_ok=True)
    argv = limits.wrap(box.argv([job.python, "-m", "ipykernel_launcher", "-f",
                                 "{connection_file}"]))
    km = PinnedSockets(transport="ipc", ip=str(runtime / "k"),
                       connection_file=str(runtime / "kernel.json"))
    # "message": the interrupt travels on the control socket (a signal would stop at bwrap).
    km._kernel_spec = KernelSpec(argv=argv, env={"PATH": "/usr/bin:/bin"}, language="python",
                                 display_name="d2l-io (sandboxed)", interrupt_mode="message")
    return km, limits


def seal(src: Path, dst: Path) -> None:
    """Move an export folder out of the kernel's reach: regular files only, size-capped."""
    from grading.files import SubmissionError, copy_submission
    from grading.limits import MAX_EXPORT_BYTES

    try:
        if src.is_dir() and not src.is_symlink():
            copy_submission(src, dst, MAX_EXPORT_BYTES)
    except SubmissionError:
        shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(src, ignore_errors=True)


def run(job: RunJob) -> None:
    nb = nbformat.read(job.notebook, as_version=4)
    out_nb, log_path = Path(job.out_notebook), Path(job.log)
    exports = job.exports
    reloads = job.reload.codes if job.reload else {}
    log: dict[str, dict] = {gid: {"ran": False, "error": "not run"} for gid in exports}

    def save() -> None:
        nbformat.write(nb, out_nb)
        log_path.write_text(json.dumps(log))

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    save()

    def sealed_to(gid: str) -> Path:  # a saving half is sealed aside, for the fresh kernel
        return Path(job.reload.saved_dir if gid in reloads else job.sealed_dir, gid)

    _in_kernel(job, nb, plan(nb, exports), exports, sealed_to, log, save)
    save()
    pending = [gid for gid in reloads if log.get(gid, {}).get("ran")]
    for gid in reloads:
        if gid in pending:
            log[gid] = {"ran": False, "error": "not run: loading in a fresh kernel did not start"}
    if pending:
        _reload(job, nb, pending, log, save)
    save()


def _in_kernel(job: RunJob, nb, steps, codes, sealed_to, log, save, before_export=None) -> None:
    """Start a sandboxed kernel (job.sandbox), run `steps` in it, and end it with everything
    it started."""
    km, limits = kernel_manager(job)
    client = CappedClient(nb, job.output_limit, km=km, timeout=job.timeout,
                          allow_errors=True, interrupt_on_timeout=False, record_timing=False,
                          iopub_timeout=10, raise_on_iopub_timeout=False,
                          startup_timeout=job.startup_timeout,
                          resources={"metadata": {"path": job.cwd}})
    killed = []  # the watchdog's reason, once it has killed the kernel
    try:
        with client.setup_kernel():
            if limits is not None:
                pid = km.provisioner.process.pid
                threading.Thread(target=lambda: _guard(pid, limits, killed), daemon=True).start()
            _steps(client, nb, steps, codes, job, sealed_to, log, save, killed, before_export)
    finally:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
        if limits is not None:
            if km.provisioner is not None and km.provisioner.process is not None:
                kill_tree(km.provisioner.process.pid)
            limits.close()


def _reload(job: RunJob, nb, pending: list[str], log: dict, save) -> None:
    """The loading halves: a fresh kernel in a fresh copy of the submission runs the code
    cells before each pending grade cell (not the visible tests, no other export), then its
    reload code with a copy of what the saving half sealed, at a path it has never seen."""
    import copy

    reload = job.reload
    rnb = copy.deepcopy(nb)  # its outputs are not the student's feedback
    for cell in rnb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    steps = [s for s in plan(rnb, job.exports) if s[0] != "export" or s[1] in pending]
    last = max(i for i, s in enumerate(steps) if s[0] == "export")
    steps = steps[:last + 1]
    codes = {gid: reload.codes[gid] for gid in pending}
    rjob = replace(job, sandbox=reload.sandbox, runtime=reload.runtime, pinned=reload.pinned,
                   cwd=reload.cwd, exports_dir=reload.exports_dir)

    def before_export(gid: str) -> None:
        """The sealed files, copied to where the reload code looks for them (whatever the
        prefix cells left there is removed first): for each path the save was given, only
        what the prompt lets a save write, the file or folder at the path and files whose
        names start with it; nothing else of the folder travels."""
        dst = Path(reload.moved, gid)
        if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
            dst.unlink()
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for rel in reload.paths[gid]:
            src_dir, stem = Path(reload.saved_dir, gid, rel).parent, Path(rel).name
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            for entry in sorted(src_dir.iterdir()) if src_dir.is_dir() else []:
                if not entry.name.startswith(stem):
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, (dst / rel).parent / entry.name)
                elif entry.is_file():
                    shutil.copyfile(entry, (dst / rel).parent / entry.name)

    def sealed_to(gid: str) -> Path:
        return Path(job.sealed_dir, gid)

    def quiet() -> None:  # the fresh kernel's prefix outputs are not saved; the log is
        save()

    _in_kernel(rjob, rnb, steps, codes, sealed_to, log, quiet, before_export)
    for gid in pending:  # a reload that never ran (the kernel died in the prefix) says so
        if log[gid]["error"].startswith("not run: loading"):
            log[gid] = {"ran": False, "error": "not run: the fresh kernel stopped before loading"}


def _guard(pid: int, limits, killed: list) -> None:
    """Kill the kernel's sandbox when it goes past its memory or process limit."""
    reason = watch(pid, limits.memory, limits.processes, lambda: not psutil.pid_exists(pid))
    if reason:
        killed.append(reason)
        kill_tree(pid)
        limits.kill_all()


def _steps(client, nb, steps, exports, job, sealed_to, log, save, killed,
           before_export=None) -> None:
    """Run the cells and exports in order; once the kernel is gone, mark the rest not run."""
    stopped = None
    for kind, what in steps:
        if kind == "skip":
            nb.cells[what].outputs = [new_output("stream", name="stdout", text=SKIPPED)]
            continue
        if stopped:
            if kind == "cell":
                nb.cells[what].outputs = [_error("NotRun", f"not run: {stopped}")]
            else:
                log[what] = {"ran": False, "error": f"not run: {stopped}"}
            continue
        if kind == "cell":
            cell, index = nb.cells[what], what
        else:
            folder = Path(job.exports_dir, what)
            # Nothing planted beforehand counts (a file, a folder or a link, even a dangling one).
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                folder.unlink()
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            if before_export is not None:
                before_export(what)
            cell, index = new_code_cell(exports[what]), len(nb.cells)
        try:
            if kind == "cell":
                client.execute_cell(cell, index)
            else:
                cell.outputs = _run_silent(client, cell.source, job.timeout)
        except CellTimeoutError:
            cell.outputs.append(_error("CellTimeoutError",
                                       f"this cell ran longer than {job.timeout} s"))
            if not _interrupt(client, job.grace):
                stopped = (f"the kernel was killed: cell {index} ran past its time limit and "
                           f"ignored the interrupt")
                cell.outputs.append(_error("KernelKilled", stopped))
        except DeadKernelError:
            why = f"it {killed[0]}" if killed else "it exited, or went past a limit"
            stopped = f"the kernel died in cell {index} ({why})"
            cell.outputs.append(_error("KernelDied", stopped))
        except Exception as exc:  # nbclient's own failures: report, keep going
            cell.outputs.append(_error(type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
        if kind == "export":
            seal(folder, sealed_to(what))
            errors = [o for o in cell.outputs if o.output_type == "error"]
            log[what] = ({"ran": False, "error": f"{errors[0].ename}: {errors[0].evalue}"[:500]}
                         if errors else {"ran": True, "error": ""})
        save()


def _run_silent(client: NotebookClient, code: str, timeout: int) -> list:
    """Run export code as a silent request: kept out of the history (`In`, `_ih`), and
    IPython's pre/post-run hooks do not fire for it. Returns an error output if it failed."""

    async def go():
        kc, km = client.kc, client.km
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False,
                            stop_on_error=False)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CellTimeoutError("export timed out")
            try:
                msg = await kc.get_shell_msg(timeout=min(1.0, left))
            except queue.Empty:
                if not await km.is_alive():
                    raise DeadKernelError("Kernel died") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                content = msg["content"]
                if content.get("status") == "ok":
                    return []
                return [_error(str(content.get("ename", "Error")), str(content.get("evalue", "")))]

    return run_sync(go)()


def _interrupt(client: NotebookClient, grace: int) -> bool:
    """Interrupt the kernel after a timeout: True if it answers again within `grace` seconds,
    else kill it and return False."""
    run_sync(client.km.interrupt_kernel)()
    saved = client.timeout
    client.timeout = grace
    try:
        nb = client.nb
        nb.cells.append(new_code_cell("pass"))
        try:
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        finally:
            nb.cells.pop()
        return True
    except Exception:  # noqa: BLE001  (timeout or death: either way the kernel is gone)
        run_sync(client.km.shutdown_kernel)(now=True)
        return False
    finally:
        client.timeout = saved


def child(job_path: str, log_path: str, env: dict[str, str], cwd: str) -> None:
    """Entry point of a runner forked from the grader's warm fork server (nbclient and
    jupyter_client already imported): its own session, environment, folder and log."""
    os.setsid()
    # Killed with its parent (the fork server, which exits with the grader): a grader killed
    # mid-batch leaves no runner, and so (bwrap --die-with-parent) no kernel, running.
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() == 1:
        os._exit(1)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        run(RunJob.from_json(Path(job_path).read_text()))
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def main() -> None:
    run(RunJob.from_json(Path(sys.argv[1]).read_text()))


if __name__ == "__main__":
    main()
