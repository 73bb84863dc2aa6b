"""Helpers for the "Loading and Saving" workbook.

Importing ``d2l_utils`` loads no deep-learning framework. Each framework has its own
submodule, which imports only that framework:

- ``d2l_utils.mxnet``      (MXNet / Gluon)
- ``d2l_utils.torch``      (PyTorch)
- ``d2l_utils.tensorflow`` (TensorFlow / Keras 3)
- ``d2l_utils.jax``        (JAX / Flax)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "scratch_dir"]

#: The folder that holds this package (the repository root for an editable install).
REPO_ROOT = Path(__file__).resolve().parent.parent


def scratch_dir(*parts: str) -> Path:
    """Return (and create) the folder where notebooks write their files.

    Notebooks never write next to their sources: every file they save goes below
    ``scratch/`` at the repository root, which git ignores. Set the environment variable
    ``D2L_SCRATCH`` to use another folder (the tests do, so parallel runs never share files).
    """
    base = Path(os.environ.get("D2L_SCRATCH") or REPO_ROOT / "scratch")
    path = base.joinpath(*parts).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
