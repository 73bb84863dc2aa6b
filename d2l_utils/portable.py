"""The framework-neutral layout of an MLP's parameters in a safetensors file.

Every framework module of d2l_utils (``save_safetensors`` / ``load_safetensors``) writes and
reads the same names and layouts, so a file written by one loads into any other:

* dense layer ``i`` (0-based, in the order of the forward pass): ``dense{i}.weight`` with
  shape ``(out, in)`` (PyTorch's and MXNet's layout; Keras and Flax store ``(in, out)`` and
  transpose) and ``dense{i}.bias`` with shape ``(out,)``, float32;
* metadata ``{"format": "d2l-io/mlp", "layers": "<n>", "framework": "<who wrote it>"}``.
  A file without a ``format`` (PyTorch DCP's safetensors files, ``safetensors``' own
  ``save_file`` without metadata) or with ``"pt"`` (what Hugging Face's libraries write) loads
  when its names and shapes fit; one that names another format is refused.

Every ``load_safetensors`` takes ``layers=k`` to load only the file's first ``k`` dense layers
into the model's first ``k`` (exercise 2: reuse trained layers in another network); the rest of
the file is not read and the model's other layers are not changed.

Files are written and read by d2l_utils.checkpoint (atomic, checksummed, validated), and a load
checks every name, shape and dtype against the target model before it changes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from d2l_utils.checkpoint import CheckpointError, load_tensors, save_tensors

FORMAT = "d2l-io/mlp"
#: "format" values a file may carry and still load (None: no "format" in its metadata).
READABLE_FORMATS = (FORMAT, None, "pt")


def save_layers(path, layers: Sequence[tuple[np.ndarray, np.ndarray]], framework: str) -> Path:
    """Save [(weight (out, in), bias (out,)), ...] in forward order."""
    tensors = {}
    for i, (w, b) in enumerate(layers):
        tensors[f"dense{i}.weight"] = np.asarray(w, np.float32)
        tensors[f"dense{i}.bias"] = np.asarray(b, np.float32)
    return save_tensors(path, tensors, {"format": FORMAT, "layers": str(len(layers)),
                                        "framework": framework})


def load_layers(path, shapes: Sequence[tuple[int, int]], *, first: bool = False
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """Read a file into [(weight (out, in), bias (out,)), ...] that fits a model whose dense
    layers have these (out, in) shapes; raise CheckpointError if it does not fit.

    ``first=True``: the file may hold more layers; only its first ``len(shapes)`` are read
    (and checked), the rest of the file is not (to reuse trained layers in another model)."""
    expected = {}
    for i, (out, inp) in enumerate(shapes):
        expected[f"dense{i}.weight"] = ((out, inp), np.float32)
        expected[f"dense{i}.bias"] = ((out,), np.float32)
    tensors, meta = load_tensors(path, expected=expected, names=list(expected) if first else None)
    if meta.get("format") not in READABLE_FORMATS:
        raise CheckpointError(path, f"not an MLP file of this workbook (format {meta.get('format')!r})")
    return [(tensors[f"dense{i}.weight"], tensors[f"dense{i}.bias"]) for i in range(len(shapes))], meta


def first_layers(layers: list, count: int | None, path) -> list:
    """The model's dense layers a load fills: all of them, or the first ``count``."""
    if count is None:
        return layers
    if not 0 < count <= len(layers):
        raise ValueError(f"cannot load {count} layers of {path} into a model with "
                         f"{len(layers)} dense layers")
    return layers[:count]
