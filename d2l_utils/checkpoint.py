"""Safe, portable, crash-safe checkpoints: named NumPy arrays in a safetensors file.

safetensors stores named tensors and nothing else: a JSON header (names, dtypes, shapes,
offsets) and the raw bytes. Loading one cannot run code, unlike a pickle (`torch.load` with
``weights_only=False``, ``np.load`` with ``allow_pickle=True``). Who does what:

* **The safetensors library** (Rust, fuzzed and audited) parses and validates every header
  before anything else here reads the file: sizes, JSON, dtypes, shapes (overflow-checked),
  offsets that cover the data exactly, once. Any standard file loads: written by the library
  from NumPy, PyTorch, Flax or TensorFlow, or by ``save_tensors``, in every whole-byte dtype of
  the format (``BF16`` and the ``F8_*`` types as ml_dtypes' NumPy dtypes).
* **This module** adds what a training run needs on top:

  - *Atomic saves.* ``save_tensors`` writes a temporary file in the same folder, fsyncs it and
    renames it over the final name (and fsyncs the folder): a crash leaves the old checkpoint
    or the new one, never a mix. The writer holds a lock on its temporary file, so the next
    save or load of that checkpoint deletes temporary files whose writer died.
  - *Integrity.* An XXH3 hash of every tensor (name, dtype, shape, bytes) and of the metadata
    is stored in the metadata and verified on load, tensor by tensor, so a partial load checks
    what it loads. A file without it (any other writer's) loads with an
    ``UncheckedCheckpointWarning``.
  - *Partial and mapped loads.* ``names=`` reads only those tensors; ``mmap=True`` returns
    read-only views of the memory-mapped file instead of copies. Mapped and verified, not
    lazy: every tensor returned is read once to check its checksum.
  - *Fit.* ``expected=`` checks names, shapes and dtypes before anything is returned.
  - *One error.* Every problem raises ``CheckpointError``, naming the file and the problem;
    nothing is returned partly loaded.

Only NumPy, ml_dtypes, xxhash and safetensors are imported here; d2l_utils' framework modules
convert their models' parameters to and from these arrays.
"""

from __future__ import annotations

import json
import mmap as _mmap
import os
import stat
import tempfile
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Mapping

import ml_dtypes
import numpy as np
import safetensors
import xxhash

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no clean-up of orphaned temporary files
    fcntl = None

__all__ = ["CheckpointError", "UncheckedCheckpointWarning", "save_tensors", "load_tensors",
           "DTYPES"]

CHECKSUM_KEY = "d2l_io.xxh3"
#: safetensors' dtype names -> NumPy dtypes (the format is little-endian)
DTYPES = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"), "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn), "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "F8_E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be saved or loaded as asked: ``path`` and ``problem``."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UncheckedCheckpointWarning(UserWarning):
    """A file loaded without an integrity check: it carries no d2l_io checksum."""


# ---------------------------------------------------------------------------------- checksum

def _digest(name: str, dtype: str, shape, data) -> str:
    h = xxhash.xxh3_64(f"{name}|{dtype}|{list(shape)}|".encode())
    h.update(data)
    return h.hexdigest()


def _meta_digest(metadata: Mapping[str, str]) -> str:
    return xxhash.xxh3_64(json.dumps(sorted(metadata.items())).encode()).hexdigest()


# -------------------------------------------------------------------------------------- save

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> tuple[int, str]:
    """Create and lock the temporary file a save writes into (a lock a clean-up running at the
    same moment could take first: then it deleted the file, and we take another)."""
    for _ in range(10):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, tmp
        os.close(fd)
    raise CheckpointError(path, "cannot create a temporary file next to it")


def remove_orphans(path) -> list[Path]:
    """Delete the temporary files that saves of ``path`` left behind when they were killed
    (their writer's lock is gone); return them. Live saves keep theirs."""
    path = Path(path)
    if fcntl is None:
        return []
    removed = []
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: OSError
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _prepare(path: Path, tensors, metadata) -> tuple[dict, dict]:
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise CheckpointError(path, f"tensor names must be non-empty strings, not {name!r}")
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _NAMES:
            raise CheckpointError(path, f"tensor {name!r} has dtype {array.dtype}, which safetensors "
                                        f"cannot hold (it holds {', '.join(DTYPES)})")
        arrays[name] = np.ascontiguousarray(array, dtype=dtype).reshape(array.shape)
    meta = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str) or key == CHECKSUM_KEY:
            raise CheckpointError(path, f"metadata must map strings to strings, not {key!r}: {value!r}")
        meta[key] = value
    return arrays, meta


def _header(entries: dict, meta: dict, digests: dict) -> bytes:
    full = {**meta, CHECKSUM_KEY: json.dumps(digests, separators=(",", ":"))}
    raw = json.dumps({"__metadata__": full, **entries}, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)  # pad: the data then starts 8-byte aligned


def save_tensors(path, tensors: Mapping[str, np.ndarray],
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (name -> array) and string ``metadata`` to ``path``, atomically.

    The file is standard safetensors: any reader loads it. The checksums are computed in a
    second thread while the bytes are written, so they cost no time on two cores or more.
    """
    path = Path(path)
    arrays, meta = _prepare(path, tensors, metadata)
    # Larger items first keeps every tensor aligned to its item size (as safetensors does).
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    entries, offset = {}, 0
    for name in order:
        a = arrays[name]
        entries[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                         "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    chunks = [arrays[name].reshape(-1).view(np.uint8) for name in order]
    # The digests have a fixed length, so the header's length is known before they are.
    digests = {"__metadata__": _meta_digest(meta), **{name: "0" * 16 for name in order}}
    placeholder = _header(entries, meta, digests)

    def compute():
        for name, chunk in zip(order, chunks):
            digests[name] = _digest(name, entries[name]["dtype"], entries[name]["shape"], chunk)

    hasher = threading.Thread(target=compute, daemon=True)
    hasher.start()
    remove_orphans(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(placeholder).to_bytes(8, "little"))
            f.write(placeholder)
            for chunk in chunks:
                f.write(chunk)  # from the array's memory, no copy
            f.flush()
            hasher.join()
            header = _header(entries, meta, digests)
            assert len(header) == len(placeholder)
            os.pwrite(f.fileno(), header, 8)
            os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)  # while the lock is held: no clean-up can take it first
    except BaseException:
        hasher.join()
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


# -------------------------------------------------------------------------------------- load

def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the key {dup!r} appears twice in its header")
    return dict(pairs)


def _open_regular(path: Path) -> int:
    """Open ``path`` for reading without blocking on a FIFO or a device; only regular files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as err:
        raise CheckpointError(path, f"cannot read it ({err.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(path, "not a regular file")
    return fd


def _read_header(path: Path, fd: int) -> tuple[dict, dict, int, int]:
    """Validate the header with the safetensors library, then read it: (entries, metadata,
    where the data starts, file size)."""
    size = os.fstat(fd).st_size
    # The library opens by name; /proc/self/fd makes it open the very file we hold.
    name = f"/proc/self/fd/{fd}" if os.path.exists(f"/proc/self/fd/{fd}") else str(path)
    try:
        with safetensors.safe_open(name, framework="numpy") as f:
            shapes = {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # SafetensorError, or an OSError from the library
        raise CheckpointError(path, _diagnose(fd, size, err)) from None
    # Valid: the header is small JSON of known shape. Read it from our descriptor, refusing
    # what the library lets through: duplicate keys (the format forbids them).
    start = 8 + int.from_bytes(os.pread(fd, 8, 0), "little")
    raw = os.pread(fd, start - 8, 8)
    if not raw.startswith(b"{"):
        raise CheckpointError(path, "not a valid safetensors file: its header does not begin with '{'")
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(path, f"not a valid safetensors file: {err}") from None
    metadata = header.pop("__metadata__", None) or {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise CheckpointError(path, f"not a valid safetensors file: the entry of {name!r} "
                                        "is not a JSON object")
    if os.fstat(fd).st_size != size or {k: (e["dtype"], e["shape"]) for k, e in header.items()} != shapes:
        raise CheckpointError(path, "it changed while being read")
    for name, entry in header.items():
        if entry["dtype"] not in DTYPES:
            raise CheckpointError(path, f"tensor {name!r} has dtype {entry['dtype']}, which packs "
                                        "several values per byte: d2l_utils loads whole-byte dtypes only")
        try:
            np.empty((0,) * len(entry["shape"]))
        except ValueError:
            raise CheckpointError(path, f"tensor {name!r} has {len(entry['shape'])} dimensions, "
                                        "more than NumPy arrays can have") from None
    return header, metadata, start, size


def _diagnose(fd: int, size: int, err: Exception) -> str:
    """Say why the library refused the file, in the reader's terms where the sizes tell."""
    problem = str(err).splitlines()[0] if str(err) else type(err).__name__
    problem = problem.removeprefix("Error while deserializing header: ")
    try:
        if size < 8:
            return f"truncated or not a safetensors file (only {size} bytes)"
        claimed = int.from_bytes(os.pread(fd, 8, 0), "little")
        if claimed > size - 8:
            return (f"truncated or not a safetensors file: its header claims {claimed} bytes, "
                    f"{size - 8} follow")
        if "not fully covered" in problem:
            header = json.loads(os.pread(fd, claimed, 8))
            end = 8 + claimed + max(e["data_offsets"][1] for k, e in header.items()
                                    if k != "__metadata__")
            if end > size:
                return f"truncated ({size} bytes, its header describes {end})"
    except Exception:  # only a better message was at stake
        pass
    return f"not a valid safetensors file: {problem}"


def _checksums(path: Path, header: dict, metadata: dict, checked: dict) -> dict | None:
    """The file's per-tensor digests (None: it has none), checked to cover exactly its tensors
    and to match its metadata (``checked``: the metadata without the digests)."""
    if CHECKSUM_KEY not in metadata:
        return None
    try:
        digests = json.loads(metadata[CHECKSUM_KEY])
        ok = isinstance(digests, dict) and all(
            isinstance(v, str) and len(v) == 16 for v in digests.values())
    except (ValueError, RecursionError):
        ok = False
    if not ok:
        raise CheckpointError(path, f"corrupted: its {CHECKSUM_KEY} checksum is not readable")
    if set(digests) != set(header) | {"__metadata__"}:
        raise CheckpointError(path, f"corrupted: its {CHECKSUM_KEY} checksum lists other tensors "
                                    "than its header")
    if digests["__metadata__"] != _meta_digest(checked):
        raise CheckpointError(path, "corrupted: the metadata does not match its checksum")
    return digests


def load_tensors(path, expected: Mapping[str, tuple] | None = None, *,
                 names: Iterable[str] | None = None, mmap: bool = False
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file: (name -> array, metadata).

    ``names``: load only these tensors (the rest of the file is not read). ``expected`` maps
    each name to ``(shape, dtype)``; when given, the tensors loaded must be exactly those names
    with those shapes and dtypes. ``mmap=True`` returns read-only views of the memory-mapped
    file, not copies (the file must not be overwritten in place meanwhile: ``save_tensors``
    never does); its tensors are still read once, to verify their checksums. Otherwise the
    arrays are copies in one buffer.
    Checksums, where the file has them, are verified for every tensor returned.
    """
    path = Path(path)
    remove_orphans(path)
    fd = _open_regular(path)
    try:
        header, metadata, start, size = _read_header(path, fd)
        checked = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
        digests = _checksums(path, header, metadata, checked)
        wanted = _select(path, header, names)
        reader = _map if mmap else _read
        try:
            tensors, computed = reader(fd, header, wanted, start, size, digests is not None)
        except OSError as err:
            raise CheckpointError(path, f"cannot read it ({err.strerror or err})") from None
        except MemoryError:
            raise CheckpointError(path, f"{size} bytes do not fit in memory: load fewer tensors "
                                        "(names=) or map the file (mmap=True)") from None
    finally:
        os.close(fd)
    if digests is None:
        warnings.warn(UncheckedCheckpointWarning(
            f"{path}: no {CHECKSUM_KEY} checksum (not written by d2l_utils): loaded unverified"),
            stacklevel=2)
    else:
        for name in wanted:
            if computed[name] != digests[name]:
                raise CheckpointError(path, f"corrupted: tensor {name!r} does not match its checksum")
    for name, array in tensors.items():
        if array.dtype == np.bool_ and array.view(np.uint8).max(initial=0) > 1:
            raise CheckpointError(path, f"corrupted: BOOL tensor {name!r} holds bytes other than 0 and 1")
    if expected is not None:
        problems = _compare(tensors, expected)
        if problems:
            raise CheckpointError(path, "does not fit: " + "; ".join(problems))
    return tensors, checked


def _select(path: Path, header: dict, names) -> list[str]:
    if names is None:
        wanted = list(header)
    else:
        wanted = list(dict.fromkeys([names] if isinstance(names, str) else names))
        missing = [n for n in wanted if n not in header]
        if missing:
            raise CheckpointError(path, f"no tensor named {', '.join(map(repr, missing))} "
                                        f"(it holds {', '.join(sorted(header))})")
    return sorted(wanted, key=lambda k: header[k]["data_offsets"][0])


CHUNK = 32 * 2**20  # bytes per read: hashing what is read overlaps the next read


def _read(fd: int, header: dict, wanted: list[str], start: int, size: int, digest: bool
          ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Copy the wanted tensors into one buffer (all of them in one pass over the data, or each
    one alone at an offset aligned for any dtype). With ``digest``, each tensor is hashed in a
    second thread as soon as its bytes are in, while the next ones are read."""
    if len(wanted) == len(header):
        at = {name: header[name]["data_offsets"][0] for name in wanted}
        reads, total = [(start, 0, size - start)], size - start
    else:
        at, reads, total = {}, [], 0
        for name in wanted:
            lo, hi = header[name]["data_offsets"]
            total += -total % 64
            at[name] = total
            reads.append((start + lo, total, hi - lo))
            total += hi - lo
    nbytes = {n: header[n]["data_offsets"][1] - header[n]["data_offsets"][0] for n in wanted}
    buf = np.empty(total, np.uint8)
    view = memoryview(buf)
    pending = sorted(wanted, key=lambda n: at[n] + nbytes[n], reverse=True)  # by end, last first
    computed = {}  # name -> future of its digest

    def hash_ready(filled: int, pool) -> None:
        while pending and at[pending[-1]] + nbytes[pending[-1]] <= filled:
            name = pending.pop()
            entry = header[name]
            data = buf[at[name]:at[name] + nbytes[name]]
            computed[name] = pool.submit(_digest, name, entry["dtype"], entry["shape"], data)

    # A second thread pays off for large reads only; below, hash in this one.
    with ThreadPoolExecutor(1) if total >= 2 * CHUNK else _Inline() as pool:
        for position, into, length in reads:
            done = 0
            while done < length:
                n = os.preadv(fd, [view[into + done:into + min(length, done + CHUNK)]],
                              position + done)
                if not n:
                    raise OSError("the file ended early")
                done += n
                if digest:
                    hash_ready(into + done, pool)
        if digest:
            hash_ready(total, pool)  # empty tensors, which no read reaches
        digests = {name: future.result() for name, future in computed.items()}
    return {name: _array(buf[at[name]:at[name] + nbytes[name]], at[name], header[name])
            for name in wanted}, digests


def _array(data: np.ndarray, offset: int, entry: dict) -> np.ndarray:
    """The tensor whose bytes are ``data`` (found at ``offset`` in an aligned buffer)."""
    dtype = DTYPES[entry["dtype"]]
    if offset % dtype.alignment:  # a writer that did not align: copy this one
        data = data.copy()
    return data.view(dtype).reshape(entry["shape"])


class _Inline:
    """A stand-in for a one-thread executor that runs each task at once, in this thread."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def submit(fn, *args) -> Future:
        future = Future()
        future.set_result(fn(*args))
        return future


def _map(fd: int, header: dict, wanted: list[str], start: int, size: int, digest: bool
         ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    m = _mmap.mmap(fd, size, access=_mmap.ACCESS_READ)
    whole = np.frombuffer(m, np.uint8)
    out, computed = {}, {}
    for name in wanted:
        entry = header[name]
        lo, hi = entry["data_offsets"]
        view = whole[start + lo:start + hi]
        if digest:
            computed[name] = _digest(name, entry["dtype"], entry["shape"], view)
        out[name] = _array(view, start + lo, entry)
    return out, computed


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
