"""Shared test set-up.

Notebooks are collected by nbval in strict mode (``--nbval``, see pyproject.toml): every stored
output is compared with a fresh run. Outputs are made deterministic in the notebooks themselves
(seeds, shapes instead of addresses), so no output needs a sanitizer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from d2l_utils import FRAMEWORK_MODULES, FRAMEWORKS  # noqa: F401 (the tests import them from here)
from d2l_utils.kernel import ENV as KERNEL_ENV  # subprocesses running notebook code get it too
from d2l_utils.kernel import KERNELS
from d2l_utils.kernel import python as kernel_python
from grading.submission import thread_env

# The shared helpers' assertions (helpers.verdict.check_verdict, ...) report their operands as
# those of the test modules do: registered before a test module imports them.
pytest.register_assert_rewrite("helpers")

ROOT = Path(__file__).resolve().parent.parent

# Each pytest-xdist worker's share of the cores, for everything it starts (notebook kernels,
# subprocesses) and for itself: frameworks size their thread pools to every core by default,
# and two workers' pools spinning on two cores starve each other (a 2 s test took 23 s).
os.environ.update(thread_env(max(1, (os.cpu_count() or 1)
                                 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))


def python_for(framework: str) -> str:
    """The Python of `framework`'s environment (.venv-mxnet for MXNet, .venv otherwise): the
    interpreter of the kernel its notebooks name."""
    return kernel_python(KERNELS[framework])


def committed_notebooks() -> list[Path]:
    """Every .ipynb below notebooks/ and solutions/ (checkpoints excluded)."""
    found = []
    for top in ("notebooks", "solutions"):
        found += [p for p in (ROOT / top).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


@pytest.fixture
def notebook_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running notebook code in a subprocess, writing to a private scratch dir."""
    env = dict(os.environ, **KERNEL_ENV)
    env["D2L_SCRATCH"] = str(tmp_path / "scratch")
    return env


# The longest test files, longest first: `make test` (pytest-xdist, --dist loadfile
# --no-loadscope-reorder) hands files to workers in collection order, so the worker that takes
# the fair class (about 3.5 minutes) starts it at once while the other works through the rest.
# By default xdist would send files with the most tests first (the notebooks, one test per
# cell), leaving the fair class to the end of one worker's queue.
LONGEST_FIRST = (
    "tests/test_grading_fair.py",
    "tests/test_course.py",
    "tests/test_grading_cluster.py",
    "tests/test_grading.py",
    "tests/test_grading_resume.py",
    "tests/test_grading_verdict.py",
    "tests/test_formgrader_browser.py",
    "notebooks/sharded-checkpoints.ipynb",
    "tests/test_browser.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other file keeps its place
