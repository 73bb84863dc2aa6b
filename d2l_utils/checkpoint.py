"""Safe, portable, crash-safe checkpoints: named NumPy arrays in a safetensors file.

safetensors stores named tensors and nothing else: a JSON header (names, dtypes, shapes,
offsets) and the raw bytes. Loading one cannot run code, unlike a pickle (`torch.load` with
``weights_only=False``, ``np.load`` with ``allow_pickle=True``). This module adds what a
training run needs on top:

* **Atomic saves.** ``save_tensors`` writes to a temporary file in the same folder, flushes and
  fsyncs it, then renames it over the final name (and fsyncs the folder). A crash at any moment
  leaves either the old checkpoint or the new one under the final name, never a mix.
* **Integrity.** A CRC-32 of the metadata and of every tensor's name, dtype, shape and bytes is
  stored in the header and checked on load, so a flipped byte is reported, not loaded.
* **One clear error.** Every problem (missing, truncated, corrupted, not a safetensors file,
  other names, shapes or dtypes than expected) raises ``CheckpointError``, which names the file
  and the problem. Nothing is returned partially.

Only NumPy and safetensors are imported here; d2l_utils' framework modules convert their
models' parameters to and from these arrays.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
from safetensors.numpy import load as _st_load
from safetensors.numpy import save_file as _st_save_file

__all__ = ["CheckpointError", "save_tensors", "load_tensors"]

CHECKSUM_KEY = "d2l_io.crc32"
# safetensors stores a 0-d array with shape (1,); the names of 0-d arrays are kept here.
SCALARS_KEY = "d2l_io.scalars"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be saved or loaded as asked: ``path`` and ``problem``."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _checksum(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """CRC-32 of the metadata and of every tensor's name, dtype, shape and bytes."""
    crc = zlib.crc32(json.dumps(sorted(metadata.items())).encode())
    for name in sorted(tensors):
        array = tensors[name]
        crc = zlib.crc32(f"{name}|{array.dtype.str}|{array.shape}".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8), crc)
    return f"{crc:08x}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_tensors(path, tensors: Mapping[str, np.ndarray],
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (name -> array) and string ``metadata`` to ``path``, atomically."""
    path = Path(path)
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(path, f"tensor names must be non-empty strings, not {name!r}")
        array = np.asarray(value)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)  # (which would also make a 0-d array 1-d)
        if array.dtype.kind not in "biuf":
            raise CheckpointError(path, f"tensor {name!r} has dtype {array.dtype}: only "
                                        "bool, integer and float arrays can be saved")
        arrays[name] = array
    meta = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CheckpointError(path, f"metadata must map strings to strings, not {key!r}: {value!r}")
        meta[key] = value
    scalars = sorted(k for k, v in arrays.items() if v.ndim == 0)
    if scalars:
        meta[SCALARS_KEY] = json.dumps(scalars)
    meta[CHECKSUM_KEY] = _checksum(arrays, meta)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _st_save_file(arrays, tmp, metadata=meta)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def load_tensors(path, expected: Mapping[str, tuple] | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a file written by ``save_tensors``: (name -> array, metadata).

    ``expected`` maps each name to ``(shape, dtype)``; when given, the file must hold exactly
    those names with those shapes and dtypes.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as err:
        raise CheckpointError(path, f"cannot read it ({err.strerror})") from None
    if len(data) < 8:
        raise CheckpointError(path, f"truncated or not a safetensors file ({len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise CheckpointError(path, f"truncated or not a safetensors file: its header claims "
                                    f"{size} bytes, {len(data) - 8} follow")
    try:
        header = json.loads(data[8:8 + size])
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a mapping")
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise CheckpointError(path, "not a safetensors file: its header is not valid JSON") from None
    if CHECKSUM_KEY not in metadata:
        raise CheckpointError(path, "no checksum in its header: not written by "
                                    "d2l_utils.checkpoint.save_tensors, or its header was altered")
    try:
        tensors = _st_load(data)
        for name in json.loads(metadata.get(SCALARS_KEY, "[]")):
            tensors[name] = tensors[name].reshape(())
    except Exception as err:  # safetensors reports a malformed file as its own error types
        raise CheckpointError(path, f"corrupted: {err}") from None
    checked = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    if _checksum(tensors, checked) != metadata[CHECKSUM_KEY]:
        raise CheckpointError(path, "corrupted: the tensors do not match the checksum in the header")
    if expected is not None:
        problems = _compare(tensors, expected)
        if problems:
            raise CheckpointError(path, "does not fit: " + "; ".join(problems))
    return tensors, {k: v for k, v in metadata.items() if k not in (CHECKSUM_KEY, SCALARS_KEY)}


def _compare(tensors, expected) -> list[str]:
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    for name in sorted(set(expected) & set(tensors)):
        shape, dtype = expected[name]
        got = tensors[name]
        if tuple(got.shape) != tuple(shape):
            problems.append(f"{name} has shape {tuple(got.shape)}, expected {tuple(shape)}")
        if got.dtype != np.dtype(dtype):
            problems.append(f"{name} has dtype {got.dtype}, expected {np.dtype(dtype)}")
    return problems
