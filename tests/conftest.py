"""Shared test set-up.

Notebooks are collected by nbval in strict mode (``--nbval``, see pyproject.toml): every stored
output is compared with a fresh run. Outputs are made deterministic in the notebooks themselves
(seeds, shapes instead of addresses); ``sanitize.cfg`` handles only what truly varies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("mxnet", "pytorch", "tensorflow", "jax")
# The module each framework's notebooks import, as it appears in sys.modules.
FRAMEWORK_MODULES = {"mxnet": "mxnet", "pytorch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
# The environment of the "d2l-io" kernel (scripts/install_kernel.py); subprocesses that run
# notebook code get the same one.
sys.path.insert(0, str(ROOT / "scripts"))
from install_kernel import ENV as KERNEL_ENV  # noqa: E402

sys.path.pop(0)


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
