"""Hostile and damaged safetensors files against ``d2l_utils.checkpoint.load_tensors``.

This corpus was written from the safetensors format description and the public contract of
``d2l_utils.checkpoint`` only, without reading the loader's source or its other tests.

Three module-level lists hold the crafted files, each entry ``(id, bytes, what-it-attacks, ...)``,
made by the registered sections of ``tests/helpers/hostile_corpus.py``:

* ``HOSTILE``: every file must be refused with ``CheckpointError`` whose message contains the
  file's path; no other exception type may escape, for a full load nor for ``names=[...]``.
* ``VALID``: standard files the spec allows (scalars, 0-size tensors, NaN data, padding, ...);
  they must load with the right names, shapes, dtypes and bytes (no over-refusal).
* ``AMBIGUOUS``: files the spec leaves open (BOOL bytes other than 0/1, unpadded header,
  non-0x20 JSON whitespace as padding, newer dtypes, ...): they must load or raise
  ``CheckpointError``, nothing else.

Beyond the lists: path attacks (directory, missing file, symlink loop, FIFO), truncation and
single-bit-flip sweeps over a small valid file, a header over the 100 MB cap, files written by
``save_tensors`` with damaged data or checksum, and a file rewritten after it was loaded (an
mmap-backed result would change, and die of SIGBUS were the file truncated).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.hostile_corpus import (
    A_OK,
    MB_CAP_OVER,
    ONE_F32,
    build_corpus,
    ent,
    f32,
    js,
    pack,
    raw,
    u64,
)

from d2l_utils.checkpoint import CheckpointError, load_tensors, save_tensors

pytestmark = [
    pytest.mark.skipif(sys.byteorder != "little",
                       reason="expected bytes are written for a little-endian host"),
    # files without a d2l_io checksum load with this warning; what it says is tested elsewhere
    pytest.mark.filterwarnings("ignore::d2l_utils.checkpoint.UncheckedCheckpointWarning"),
]

HOSTILE, VALID, AMBIGUOUS = build_corpus()


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def expect_refusal(path: Path, **kwargs) -> CheckpointError:
    """load_tensors must raise CheckpointError (and nothing else) naming the path."""
    with pytest.raises(CheckpointError) as info:
        load_tensors(path, **kwargs)
    message = str(info.value)
    assert str(path) in message, f"path missing from message: {message!r}"
    assert message.replace(str(path), "").strip(" :'\"()"), "message says nothing but the path"
    return info.value


def load_or_refuse(path: Path, **kwargs):
    """For cases the spec leaves open: returns the result, or None after a clean refusal."""
    try:
        result = load_tensors(path, **kwargs)
    except CheckpointError as exc:
        assert str(path) in str(exc), f"path missing from message: {exc!r}"
        return None
    tensors, metadata = result
    assert isinstance(tensors, dict)
    assert metadata is None or isinstance(metadata, dict)
    for name, arr in tensors.items():
        assert isinstance(name, str) and isinstance(arr, np.ndarray)
    return result


def check_loaded(tensors, expected):
    assert set(tensors) == set(expected)
    for name, (dtype_name, shape, data) in expected.items():
        arr = tensors[name]
        assert isinstance(arr, np.ndarray), name
        assert arr.dtype.name == dtype_name, (name, arr.dtype)
        assert arr.shape == shape, (name, arr.shape)
        assert arr.tobytes() == data, name  # tobytes() is C order: checks row-major layout


def test_corpus_sizes():
    ids = [c.id for c in HOSTILE + VALID + AMBIGUOUS]
    assert len(ids) == len(set(ids))
    assert len(HOSTILE) >= 60 and len(VALID) >= 10
    assert issubclass(CheckpointError, ValueError)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One directory for the parametrized cases (a tmp_path each costs more than the load)."""
    return tmp_path_factory.mktemp("checkpoint_hostile")


@pytest.mark.parametrize("case", HOSTILE, ids=[c.id for c in HOSTILE])
def test_hostile_file_is_refused(workdir, case):
    path = workdir / f"hostile_{case.id}.safetensors"
    path.write_bytes(case.data)
    expect_refusal(path)
    for name in dict.fromkeys(case.names[:1] + case.names[-1:]):  # first and last, once each
        expect_refusal(path, names=[name])


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_file_loads(workdir, case):
    path = workdir / f"valid_{case.id}.safetensors"
    path.write_bytes(case.data)
    tensors, metadata = load_tensors(path)
    check_loaded(tensors, case.expected)
    if case.metadata:
        assert metadata == case.metadata
    else:
        assert not metadata  # None or {}
    if case.expected:
        name = sorted(case.expected)[-1]
        subset, _ = load_tensors(path, names=[name])
        check_loaded(subset, {name: case.expected[name]})


@pytest.mark.parametrize("case", AMBIGUOUS, ids=[c.id for c in AMBIGUOUS])
def test_ambiguous_file_loads_or_is_refused(workdir, case):
    path = workdir / f"ambiguous_{case.id}.safetensors"
    path.write_bytes(case.data)
    load_or_refuse(path)
    for name in case.names[:1]:
        result = load_or_refuse(path, names=[name])
        if result is not None:
            assert set(result[0]) == {name}


def test_bool_bytes_load_as_bool_or_are_refused(tmp_path):
    path = tmp_path / "bool.safetensors"
    path.write_bytes(raw(js({"a": ent("BOOL", [3], 0, 3)}), b"\x00\x02\xff"))
    result = load_or_refuse(path)
    if result is not None:
        assert result[0]["a"].dtype == np.bool_ and result[0]["a"].shape == (3,)


def test_missing_name_is_refused_or_omitted(tmp_path):
    path = tmp_path / "valid.safetensors"
    path.write_bytes(raw(js({"a": A_OK}), ONE_F32))
    try:
        tensors, _ = load_tensors(path, names=["nope"])
    except (CheckpointError, KeyError):
        return
    assert "nope" not in tensors


# ---- sweeps over one small valid file ---------------------------------------------------------

SMALL_FILE, SMALL_EXPECTED = pack(
    [("a", "F32", (2,), f32(1, 2)), ("b", "U8", (3,), b"\x05\x06\x07")], {"k": "v"})


def test_every_truncation_is_refused(tmp_path):
    """Every strict prefix of a file whose buffer ends in data must be refused."""
    path = tmp_path / "cut.safetensors"
    for length in range(len(SMALL_FILE)):
        path.write_bytes(SMALL_FILE[:length])
        expect_refusal(path)
    path.write_bytes(SMALL_FILE)
    check_loaded(load_tensors(path)[0], SMALL_EXPECTED)


def test_every_header_bit_flip_loads_or_is_refused(tmp_path):
    """Flip bits in the length prefix and the header: load or CheckpointError, nothing else."""
    path = tmp_path / "flip.safetensors"
    n = struct.unpack("<Q", SMALL_FILE[:8])[0]
    for pos in range(8 + n):
        for mask in (0x01, 0x20, 0x80):
            damaged = bytearray(SMALL_FILE)
            damaged[pos] ^= mask
            path.write_bytes(bytes(damaged))
            load_or_refuse(path)


def test_appended_byte_is_refused(tmp_path):
    path = tmp_path / "long.safetensors"
    path.write_bytes(SMALL_FILE + b" ")
    expect_refusal(path)
    expect_refusal(path, names=["b"])


# ---- paths that are not regular files ----------------------------------------------------------

def test_directory_is_refused(tmp_path):
    path = tmp_path / "dir.safetensors"
    path.mkdir()
    expect_refusal(path)


def test_missing_file_is_refused(tmp_path):
    expect_refusal(tmp_path / "missing.safetensors")


def test_symlink_loop_is_refused(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.symlink_to(b)
    b.symlink_to(a)
    expect_refusal(a)


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "link.safetensors"
    link.symlink_to(tmp_path / "nowhere")
    expect_refusal(link)


def test_symlink_to_valid_file_and_str_path_load(tmp_path):
    target = tmp_path / "real.safetensors"
    target.write_bytes(SMALL_FILE)
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    check_loaded(load_tensors(link)[0], SMALL_EXPECTED)
    check_loaded(load_tensors(str(target))[0], SMALL_EXPECTED)


def test_odd_path_characters_appear_in_message(tmp_path):
    path = tmp_path / "we ird \u00fc [x].safetensors"
    path.write_bytes(u64(2**64 - 1))
    expect_refusal(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "locked.safetensors"
    path.write_bytes(SMALL_FILE)
    path.chmod(0)
    try:
        expect_refusal(path)
    finally:
        path.chmod(0o600)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_hanging(tmp_path):
    """A named pipe with no writer: opening it for reading blocks forever unless checked."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = load_tensors(fifo)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(1.0)
    hung = thread.is_alive()
    if hung:  # unblock the loader: a writer that closes at once gives it EOF
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(2.0)
    assert not hung, "load_tensors blocked on a FIFO"
    exc = outcome.get("exc")
    assert isinstance(exc, CheckpointError), outcome
    assert str(fifo) in str(exc)


# ---- the header cap -----------------------------------------------------------------------------

def test_header_over_cap_is_refused_even_when_it_is_valid_json(tmp_path):
    """A real header of 100 MiB + 1 bytes ('{', spaces, '}'): valid JSON, but over the cap."""
    path = tmp_path / "big.safetensors"
    chunk = b" " * 2**20
    spaces = MB_CAP_OVER - 2
    with open(path, "wb") as f:
        f.write(u64(MB_CAP_OVER) + b"{")
        for _ in range(spaces // len(chunk)):
            f.write(chunk)
        f.write(b" " * (spaces % len(chunk)) + b"}")
    assert path.stat().st_size == 8 + MB_CAP_OVER
    expect_refusal(path)


# ---- files written by save_tensors ---------------------------------------------------------------

def _saved(tmp_path) -> tuple[Path, dict, int]:
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(5, dtype=np.int64)}
    path = save_tensors(tmp_path / "saved.safetensors", tensors, {"note": "x"})
    path = Path(path)
    n = struct.unpack("<Q", path.read_bytes()[:8])[0]
    return path, tensors, n


def _header(path: Path) -> dict:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n])


def test_save_then_load_round_trip(tmp_path):
    path, tensors, _ = _saved(tmp_path)
    loaded, metadata = load_tensors(path)
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == arr.dtype
    assert metadata["note"] == "x"
    only, _ = load_tensors(path, names=["b"])
    assert set(only) == {"b"}
    np.testing.assert_array_equal(only["b"], tensors["b"])


def test_saved_file_with_flipped_data_byte_is_refused(tmp_path):
    """The structure is intact; only the checksum can tell."""
    path, tensors, n = _saved(tmp_path)
    header = _header(path)
    begin = header["a"]["data_offsets"][0]
    data = bytearray(path.read_bytes())
    data[8 + n + begin] ^= 0x01
    path.write_bytes(bytes(data))
    expect_refusal(path)
    expect_refusal(path, names=["a"])
    # asking only for the undamaged tensor: refuse, or return it intact
    result = load_or_refuse(path, names=["b"])
    if result is not None:
        np.testing.assert_array_equal(result[0]["b"], tensors["b"])


def test_saved_file_with_altered_checksum_is_refused(tmp_path):
    """Change one hex digit of the d2l_io. checksum value (whatever its layout), nothing else."""
    path, _, n = _saved(tmp_path)
    buffer = path.read_bytes()[8 + n:]
    header = _header(path)
    keys = [k for k in header.get("__metadata__", {}) if k.startswith("d2l_io.")]
    assert keys, "save_tensors wrote no d2l_io. checksum"
    value = header["__metadata__"][keys[0]]
    pos = max(i for i, ch in enumerate(value) if ch in "0123456789abcdefABCDEF")
    header["__metadata__"][keys[0]] = value[:pos] + ("1" if value[pos] == "0" else "0") + \
        value[pos + 1:]
    path.write_bytes(raw(js(header), buffer))
    expect_refusal(path)
    for name in ("a", "b"):  # the digit may guard only one tensor: refuse, or load cleanly
        load_or_refuse(path, names=[name])


def test_saved_file_with_trailing_bytes_is_refused(tmp_path):
    path, _, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes() + b"PK\x05\x06" + bytes(18))
    expect_refusal(path)


def test_saved_file_without_checksum_still_loads(tmp_path):
    """Dropping the checksum leaves a plain safetensors file, which must be accepted."""
    path, tensors, n = _saved(tmp_path)
    data = path.read_bytes()
    header = _header(path)
    meta = {k: v for k, v in header.pop("__metadata__", {}).items()
            if not k.startswith("d2l_io.")}
    if meta:
        header = {"__metadata__": meta, **header}
    path.write_bytes(raw(js(header), data[8 + n:]))
    loaded, metadata = load_tensors(path)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
    assert metadata["note"] == "x"


# ---- results must not depend on the file after loading (SIGBUS) ---------------------------------

def test_result_does_not_alias_the_file(tmp_path):
    """Arrays backed by an mmap of the file change when the file is rewritten, and die of SIGBUS
    when it is truncated; rewrite the file in place (no truncation) and check nothing moved."""
    path = tmp_path / "mapped.safetensors"
    original = np.arange(512 * 512, dtype="<f8").reshape(512, 512)
    data, _ = pack([("big", "F64", (512, 512), original.tobytes()),
                    ("small", "U8", (4,), b"\x01\x02\x03\x04")])
    path.write_bytes(data)
    tensors, _ = load_tensors(path)
    with open(path, "r+b") as f:  # same size, different bytes: no SIGBUS even if mapped
        f.write(data[:-4 - original.nbytes] + bytes(original.nbytes + 4))
    np.testing.assert_array_equal(tensors["big"], original)
    assert tensors["small"].tobytes() == b"\x01\x02\x03\x04"
