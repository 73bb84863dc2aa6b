"""What only the solutions hold: the text no student-facing file (a workbook, a web page) may
contain."""

from __future__ import annotations

import re

import nbformat

REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def hidden_lines(solution: nbformat.NotebookNode) -> set[str]:
    """Lines that only solutions and hidden tests contain (not set-up code a student also sees)."""
    inside, outside = set(), set()
    for cell in solution.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            inside |= {l.strip() for l in cell.source.splitlines()}
            continue
        regions = REGION.findall(cell.source)
        for _, body in regions:
            inside |= {l.strip() for l in body.splitlines()}
        outside |= {l.strip() for l in REGION.sub("", cell.source).splitlines()}
    # Very short lines ("else:", ")") say nothing about a solution.
    return {l for l in inside - outside if len(l) > 8}
