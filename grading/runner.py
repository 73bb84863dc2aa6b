"""Run a student notebook cell by cell, with the grader's export code after each graded cell.

    python -m grading.runner JOB.json

Runs inside the kernel's sandbox (grading.sandbox), next to the kernel: nothing here decides a
score. JOB.json gives the notebook, where the executed notebook and the export log go, the
export code per grade_id (grading.checks), the kernel, the per-cell time limit and the output
cap. The executed notebook becomes the student's feedback; the export log says, per grade_id,
whether its export ran and, if not, why (first line of the error). Both are written after
every cell, so a runner that is killed leaves what it had.

Limits: a cell that runs past its time limit is interrupted; if the kernel does not answer
within a grace period (a loop that swallows KeyboardInterrupt) it is killed, and that cell and
every later one score zero with the reason. A cell keeps at most `output_limit` bytes of
output. A kernel that dies (os._exit, the memory limit) ends the run the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from jupyter_core.utils import run_sync
from nbformat.v4 import new_code_cell, new_output

GRACE = 5  # seconds a kernel gets to answer an interrupt


def _error(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue,
                      traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class CappedClient(NotebookClient):
    """nbclient that keeps at most `output_limit` bytes of output per cell."""

    output_limit = 1_000_000

    def output(self, outs, msg, display_id, cell_index):
        used = getattr(self, "_used", {}).get(cell_index, 0)
        if used > self.output_limit:
            return None
        used += len(json.dumps(msg.get("content", {})))
        self._used = {**getattr(self, "_used", {}), cell_index: used}
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
    the cell of that grade_id, and at the end for any grade_id whose cell is missing."""
    steps, done = [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            steps.append(("cell", i))
        gid = grade_id(cell)
        if gid in exports and gid not in done:
            steps.append(("export", gid))
            done.add(gid)
    steps += [("export", gid) for gid in exports if gid not in done]
    return steps


def run(job: dict) -> None:
    nb = nbformat.read(job["notebook"], as_version=4)
    out_nb, log_path = Path(job["out_notebook"]), Path(job["log"])
    exports: dict[str, str] = job["exports"]
    log: dict[str, dict] = {gid: {"ran": False, "error": "not run"} for gid in exports}

    def save() -> None:
        nbformat.write(nb, out_nb)
        log_path.write_text(json.dumps(log))

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = CappedClient(nb, timeout=job["timeout"], kernel_name=job["kernel"],
                          allow_errors=True, interrupt_on_timeout=False, record_timing=False,
                          iopub_timeout=10, raise_on_iopub_timeout=False,
                          startup_timeout=job.get("startup_timeout", 120),
                          resources={"metadata": {"path": job["cwd"]}})
    client.output_limit = job["output_limit"]
    stopped = None  # why the kernel is gone
    save()
    with client.setup_kernel():
        for kind, what in plan(nb, exports):
            if stopped:
                if kind == "cell":
                    nb.cells[what].outputs = [_error("NotRun", f"not run: {stopped}")]
                else:
                    log[what] = {"ran": False, "error": f"not run: {stopped}"}
                continue
            if kind == "cell":
                cell, index = nb.cells[what], what
            else:
                folder = Path(job["exports_dir"], what)
                shutil.rmtree(folder, ignore_errors=True)  # nothing planted beforehand counts
                if folder.exists():
                    folder.unlink()
                folder.mkdir(parents=True)
                cell, index = new_code_cell(exports[what]), len(nb.cells)
                nb.cells.append(cell)  # nbclient addresses cells by index; removed below
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                cell.outputs.append(_error("CellTimeoutError",
                                           f"this cell ran longer than {job['timeout']} s"))
                if not _interrupt(client):
                    stopped = (f"the kernel was killed: cell {index} ran past its time limit and "
                               f"ignored the interrupt")
                    cell.outputs.append(_error("KernelKilled", stopped))
            except DeadKernelError:
                stopped = (f"the kernel died in cell {index} (it exited, or went past its memory "
                           f"or process limit)")
                cell.outputs.append(_error("KernelDied", stopped))
            except Exception as exc:  # nbclient's own failures: report, keep going
                cell.outputs.append(_error(type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
            if kind == "export":
                nb.cells.pop()
                errors = [o for o in cell.outputs if o.output_type == "error"]
                log[what] = ({"ran": False, "error": f"{errors[0].ename}: {errors[0].evalue}"[:500]}
                             if errors else {"ran": True, "error": ""})
            save()
    save()


def _interrupt(client: NotebookClient) -> bool:
    """Interrupt the kernel after a timeout: True if it answers again within GRACE seconds,
    else kill it and return False."""
    run_sync(client.km.interrupt_kernel)()
    saved = client.timeout
    client.timeout = GRACE
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


def main() -> None:
    run(json.loads(Path(sys.argv[1]).read_text()))


if __name__ == "__main__":
    main()
