"""Safe, portable, crash-safe checkpoints: named NumPy arrays in a safetensors file.

safetensors stores named tensors and nothing else: a JSON header (names, dtypes, shapes,
offsets) and the raw bytes. Loading one cannot run code, unlike a pickle (`torch.load` with
``weights_only=False``, ``np.load`` with ``allow_pickle=True``). This module adds what a
training run needs on top:

* **Atomic saves.** ``save_tensors`` writes to a temporary file in the same folder, flushes and
  fsyncs it, then renames it over the final name (and fsyncs the folder). A crash at any moment
  leaves either the old checkpoint or the new one under the final name, never a mix.
* **Integrity.** An XXH3 hash (xxhash) of the metadata and of every tensor's name, dtype,
  shape and bytes is stored in the header and checked on load, so a flipped byte is reported,
  not loaded.
* **Speed.** The file is written straight from the arrays' memory and read with one
  ``readinto`` into one buffer, the tensors being views of it: close to the disk's raw speed
  (``benchmarks/checkpoint_io.py``). The bytes on disk are the safetensors format exactly;
  tests check that the ``safetensors`` library reads our files and that we read its files.
* **One clear error.** Every problem (missing, truncated, corrupted, not a safetensors file,
  other names, shapes or dtypes than expected) raises ``CheckpointError``, which names the file
  and the problem. Nothing is returned partially.

Only NumPy and xxhash are imported here; d2l_utils' framework modules convert their
models' parameters to and from these arrays.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import xxhash

__all__ = ["CheckpointError", "save_tensors", "load_tensors"]

CHECKSUM_KEY = "d2l_io.xxh3"
# safetensors' dtype names <-> NumPy dtypes (little-endian, as the format requires)
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be saved or loaded as asked: ``path`` and ``problem``."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _checksum(header: Mapping[str, dict], metadata: Mapping[str, str], chunks) -> str:
    """XXH3 of the metadata, of every entry's name, dtype and shape, and of the tensor bytes
    (``chunks``, in file order)."""
    h = xxhash.xxh3_64()
    h.update(json.dumps(sorted(metadata.items())).encode())
    for name in sorted(header):
        h.update(f"{name}|{header[name]['dtype']}|{header[name]['shape']}".encode())
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


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
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise CheckpointError(path, f"tensor names must be non-empty strings, not {name!r}")
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _NAMES:
            raise CheckpointError(path, f"tensor {name!r} has dtype {array.dtype}: only "
                                        "bool, integer and float arrays can be saved")
        arrays[name] = np.ascontiguousarray(array, dtype=dtype).reshape(array.shape)
    meta = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str) or key == CHECKSUM_KEY:
            raise CheckpointError(path, f"metadata must map strings to strings, not {key!r}: {value!r}")
        meta[key] = value

    # Larger items first keeps every tensor aligned to its item size (as safetensors does).
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header, offset = {}, 0
    for name in order:
        a = arrays[name]
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    chunks = [arrays[name].reshape(-1).view(np.uint8) for name in order]
    meta[CHECKSUM_KEY] = _checksum(header, meta, chunks)
    raw = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # pad: the data then starts 8-byte aligned

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(raw).to_bytes(8, "little"))
            f.write(raw)
            for chunk in chunks:
                f.write(chunk)  # from the array's memory, no copy
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
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


def _parse(path: Path, buf: np.ndarray) -> tuple[dict, dict, int]:
    """Validate the header the way the safetensors format defines it; return (entries,
    metadata, where the data starts)."""
    size = int.from_bytes(buf[:8].tobytes(), "little")
    if size > len(buf) - 8:
        raise CheckpointError(path, f"truncated or not a safetensors file: its header claims "
                                    f"{size} bytes, {len(buf) - 8} follow")
    try:
        header = json.loads(buf[8:8 + size].tobytes())
        if not isinstance(header, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(path, "not a safetensors file: its header is not valid JSON") from None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(path, "corrupted: the header's metadata is not a string mapping")
    start, end = 8 + size, 0
    spans = []
    for name, entry in header.items():
        try:
            dtype = np.dtype(_DTYPES[entry["dtype"]])
            shape = [int(d) for d in entry["shape"]]
            lo, hi = (int(o) for o in entry["data_offsets"])
            if any(d < 0 for d in shape) or entry["shape"] != shape or not 0 <= lo <= hi:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(path, f"corrupted: bad header entry for {name!r}") from None
        if hi - lo != int(np.prod(shape)) * dtype.itemsize:
            raise CheckpointError(path, f"corrupted: {name!r} spans {hi - lo} bytes, its shape "
                                        f"{tuple(shape)} needs {int(np.prod(shape)) * dtype.itemsize}")
        spans.append((lo, hi))
        end = max(end, hi)
    spans.sort()
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:])) or (spans and spans[0][0] != 0):
        raise CheckpointError(path, "corrupted: the tensors' byte ranges overlap or leave gaps")
    if start + end != len(buf):
        problem = "truncated" if start + end > len(buf) else "corrupted: extra bytes at the end"
        raise CheckpointError(path, f"{problem} ({len(buf)} bytes, the header describes {start + end})")
    return header, metadata, start


def load_tensors(path, expected: Mapping[str, tuple] | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a file written by ``save_tensors``: (name -> array, metadata).

    ``expected`` maps each name to ``(shape, dtype)``; when given, the file must hold exactly
    those names with those shapes and dtypes. The arrays are views of one buffer read at once.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = np.empty(size, np.uint8)
            got = f.readinto(buf)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as err:
        raise CheckpointError(path, f"cannot read it ({err.strerror})") from None
    if got != size or size < 8:
        raise CheckpointError(path, f"truncated or not a safetensors file ({got} bytes)")
    header, metadata, start = _parse(path, buf)
    if CHECKSUM_KEY not in metadata:
        raise CheckpointError(path, "no checksum in its header: not written by "
                                    "d2l_utils.checkpoint.save_tensors, or its header was altered")
    checked = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    if _checksum(header, checked, [buf[start:]]) != metadata[CHECKSUM_KEY]:
        raise CheckpointError(path, "corrupted: the content does not match the checksum in the header")
    tensors = {}
    for name in sorted(header, key=lambda k: header[k]["data_offsets"][0]):
        entry = header[name]
        lo, hi = entry["data_offsets"]
        tensors[name] = buf[start + lo:start + hi].view(_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    if expected is not None:
        problems = _compare(tensors, expected)
        if problems:
            raise CheckpointError(path, "does not fit: " + "; ".join(problems))
    return tensors, checked


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
