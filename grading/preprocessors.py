"""nbgrader preprocessors of this course: hardened execution, feedback without hidden tests.

GuardedExecute is nbgrader's Execute preprocessor, hardened for untrusted notebooks.

nbgrader already interrupts a cell that runs longer than `Execute.timeout` and goes on with the
next one. Two more things a student notebook can do would stop or swamp a batch:

* print without end: nbclient keeps every output in memory until the cell ends, so a loop
  that prints fills memory before the timeout fires. Here a cell keeps at most
  `output_limit` bytes of output; the rest is dropped and the cell says so.
* end its kernel (`os._exit`, `sys.exit()` in a thread, a crash): nbclient raises
  DeadKernelError and nbgrader gives up on the whole notebook. Here the cell that killed the
  kernel and every cell after it get an error output naming the reason, so the notebook is
  still graded: zero for those cells, full marks for what passed before.
"""

from __future__ import annotations

import json

from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_output
from traitlets import Integer

from nbgrader.preprocessors import ClearHiddenTests, Execute


def _error(ename: str, evalue: str) -> NotebookNode:
    return new_output("error", ename=ename, evalue=evalue,
                      traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class GuardedExecute(Execute):
    output_limit = Integer(1_000_000, help="Bytes of output a cell may keep.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._dead = None
        self._output_bytes = {}
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._dead is not None:
            cell.outputs = [_error("KernelDied", f"not run: {self._dead}")]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead = f"the kernel died while running cell {index}"
            cell.outputs.append(_error("KernelDied", self._dead))
            return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        used = self._output_bytes.get(cell_index, 0)
        if used > self.output_limit:
            return None
        used += len(json.dumps(msg.get("content", {})))
        self._output_bytes[cell_index] = used
        if used > self.output_limit:
            note = new_output("stream", name="stderr",
                              text=f"\n[output truncated: this cell printed more than "
                                   f"{self.output_limit} bytes]\n")
            outs.append(note)
            return None
        return super().output(outs, msg, display_id, cell_index)


class HideHiddenTests(ClearHiddenTests):
    """Feedback shows the visible tests only.

    nbgrader's feedback shows the hidden tests by default, and a failing hidden test's
    traceback quotes its source line even when the region is removed. Here the hidden regions
    are removed and a grade cell that had one keeps only the error's name and message.
    """

    def preprocess_cell(self, cell, resources, index):
        had_hidden = self.begin_test_delimeter in cell.source
        cell, resources = super().preprocess_cell(cell, resources, index)
        if had_hidden and cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}" if out.evalue else out.ename,
                                     "(a hidden test failed; its code is not shown)"]
        return cell, resources
