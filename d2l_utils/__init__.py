"""Helpers for the "Loading and Saving" workbook.

Importing ``d2l_utils`` loads no deep-learning framework. Each framework has its own
submodule, which imports only that framework:

- ``d2l_utils.mxnet``      (MXNet / Gluon)
- ``d2l_utils.torch``      (PyTorch)
- ``d2l_utils.tensorflow`` (TensorFlow / Keras 3)
- ``d2l_utils.jax``        (JAX / Flax)

``python -m d2l_utils.kernel`` installs the Jupyter kernel every notebook uses, and
``python -m d2l_utils.lab`` opens the workbook in JupyterLab (``make lab``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

__all__ = ["FRAMEWORKS", "FRAMEWORK_MODULES", "REPO_ROOT", "scratch_dir", "make_classification"]

#: The four frameworks, named as d2l names them (notebooks/<framework>/, solutions/<framework>/).
FRAMEWORKS = ("mxnet", "pytorch", "tensorflow", "jax")
#: The module each framework's notebooks import, as it appears in ``sys.modules``.
FRAMEWORK_MODULES = {"mxnet": "mxnet", "pytorch": "torch", "tensorflow": "tensorflow", "jax": "jax"}

#: The folder that holds this package (the repository root for an editable install).
REPO_ROOT = Path(__file__).resolve().parent.parent


def scratch_dir(*parts: str, clean: bool = False) -> Path:
    """Return (and create) the folder where notebooks write their files.

    Notebooks never write next to their sources: every file they save goes below
    ``scratch/`` at the repository root, which git ignores. Set the environment variable
    ``D2L_SCRATCH`` to use another folder (the tests do, so parallel runs never share files).
    With ``clean=True`` the folder is emptied first, so nothing a cell reads can be left over
    from an earlier run.
    """
    base = Path(os.environ.get("D2L_SCRATCH") or REPO_ROOT / "scratch")
    path = base.joinpath(*parts).resolve()
    if clean and path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_classification(n: int = 512, num_inputs: int = 20, num_classes: int = 10,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small classification data set made in code (no download): X float32 (n, num_inputs),
    y int64 (n,), the label of each row being the argmax of a fixed random linear map of it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, num_inputs)).astype(np.float32)
    W = rng.standard_normal((num_inputs, num_classes)).astype(np.float32)
    return X, (X @ W).argmax(axis=1).astype(np.int64)
