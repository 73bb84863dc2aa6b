"""d2l_utils.checkpoint: round trips, and one clear error for every kind of bad file."""

import json
import os

import numpy as np
import pytest

from d2l_utils.checkpoint import (CHECKSUM_KEY, CheckpointError, UncheckedCheckpointWarning,
                                  load_tensors, remove_orphans, save_tensors)

RNG = np.random.default_rng(0)
TENSORS = {
    "dense0.weight": RNG.standard_normal((4, 3)).astype(np.float32),
    "dense0.bias": np.zeros(4, np.float32),
    "half": RNG.standard_normal(5).astype(np.float16),
    "steps": np.arange(3, dtype=np.int64),
    "mask": np.array([True, False]),
    "scalar": np.float64(2.5),
    "empty": np.zeros((0, 3), np.float32),
}
EXPECTED = {k: (np.shape(v), np.asarray(v).dtype) for k, v in TENSORS.items()}


@pytest.fixture
def saved(tmp_path):
    return save_tensors(tmp_path / "ck.safetensors", TENSORS, {"epoch": "3"})


def test_round_trip(saved):
    tensors, meta = load_tensors(saved, expected=EXPECTED)
    assert meta == {"epoch": "3"}
    assert tensors.keys() == TENSORS.keys()
    for k, v in TENSORS.items():
        assert tensors[k].dtype == np.asarray(v).dtype and np.array_equal(tensors[k], v)
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary left


def _error(path, **kw):
    with pytest.raises(CheckpointError) as info:
        load_tensors(path, **kw)
    assert str(path) in str(info.value) and info.value.path == path
    return info.value.problem


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "nope.safetensors")


def test_truncated(saved):
    data = saved.read_bytes()
    for cut in (0, 5, 40, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:cut])
        problem = _error(saved)
        assert "truncated" in problem or "corrupted" in problem, problem


def test_flipped_data_byte_is_detected(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0x10
    saved.write_bytes(bytes(data))
    assert "checksum" in _error(saved)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "pickle.pt"
    path.write_bytes(b"\x80\x04\x95" + b"x" * 100)
    assert "not a safetensors file" in _error(path)
    assert "not a regular file" in _error(path.parent)


def test_header_without_checksum_loads_with_a_warning(saved):
    """A file from any other writer has no checksum: it loads, and says it was not verified."""
    data = saved.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    del header["__metadata__"][CHECKSUM_KEY]
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(size)
    saved.write_bytes(data[:8] + raw + data[8 + size:])
    with pytest.warns(UncheckedCheckpointWarning, match="no d2l_io.xxh3 checksum"):
        tensors, meta = load_tensors(saved, expected=EXPECTED)
    assert meta == {"epoch": "3"} and np.array_equal(tensors["dense0.weight"], TENSORS["dense0.weight"])


def test_checksum_of_other_content_is_refused(saved, tmp_path):
    """A checksum copied from another file (same names) does not vouch for this one."""
    other = save_tensors(tmp_path / "other.safetensors",
                         {**TENSORS, "steps": np.arange(1, 4, dtype=np.int64)}, {"epoch": "3"})
    ours, theirs = saved.read_bytes(), other.read_bytes()
    size = int.from_bytes(ours[:8], "little")
    assert size == int.from_bytes(theirs[:8], "little")
    saved.write_bytes(ours[:8] + theirs[8:8 + size] + ours[8 + size:])
    assert "'steps' does not match its checksum" in _error(saved)


def test_partial_load_reads_only_what_it_names(saved):
    """Damage one tensor's bytes: the others still load (their own checksums hold), and
    loading the damaged one, or everything, is refused."""
    tensors, _ = load_tensors(saved)
    data = bytearray(saved.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    header = json.loads(data[8:start])
    lo, hi = header["dense0.weight"]["data_offsets"]
    data[start + lo] ^= 0xFF
    saved.write_bytes(bytes(data))
    for mmap in (False, True):
        part, meta = load_tensors(saved, names=["dense0.bias", "steps"], mmap=mmap,
                                  expected={k: EXPECTED[k] for k in ("dense0.bias", "steps")})
        assert part.keys() == {"dense0.bias", "steps"} and meta == {"epoch": "3"}
        assert np.array_equal(part["steps"], TENSORS["steps"])
        assert "'dense0.weight' does not match its checksum" in _error(saved, mmap=mmap)
        assert "'dense0.weight' does not match" in _error(saved, names=["dense0.weight"], mmap=mmap)
    assert "no tensor named 'dense9.weight'" in _error(saved, names=["dense9.weight"])


def test_memory_mapped_load(saved):
    tensors, _ = load_tensors(saved, mmap=True, expected=EXPECTED)
    for k, v in TENSORS.items():
        assert np.array_equal(tensors[k], v)
        assert not tensors[k].flags.writeable  # views of a read-only map


def test_other_architecture_is_named(saved):
    other = dict(EXPECTED)
    del other["mask"]
    other["dense1.weight"] = ((2, 4), np.float32)
    other["dense0.weight"] = ((3, 4), np.float32)
    other["half"] = ((5,), np.float32)
    problem = _error(saved, expected=other)
    assert "missing tensors ['dense1.weight']" in problem
    assert "unexpected tensors ['mask']" in problem
    assert "dense0.weight has shape (4, 3), expected (3, 4)" in problem
    assert "half has dtype float16, expected float32" in problem


def test_failed_save_keeps_the_old_file(saved):
    before = saved.read_bytes()
    with pytest.raises(CheckpointError, match="dtype object"):
        save_tensors(saved, {"bad": np.array([{}], dtype=object)})
    with pytest.raises(CheckpointError, match="metadata"):
        save_tensors(saved, TENSORS, {"epoch": 3})
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == [saved.name]


def test_file_mode_follows_umask(saved):
    mask = os.umask(0)
    os.umask(mask)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~mask


def test_files_are_standard_safetensors(saved, tmp_path):
    """The safetensors library reads our files, and we read its files (no checksum: a
    warning), from NumPy and from PyTorch, in every whole-byte dtype it defines."""
    import ml_dtypes
    import torch
    from safetensors.numpy import load_file, save_file
    from safetensors.torch import save_file as save_torch

    theirs = load_file(saved)
    for k, v in TENSORS.items():
        assert np.array_equal(theirs[k].reshape(np.shape(v)), v)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, plain, metadata={"by": "numpy"})
    with pytest.warns(UncheckedCheckpointWarning):
        tensors, meta = load_tensors(plain)
    assert meta == {"by": "numpy"} and np.array_equal(tensors["w"], np.ones((2, 2)))

    dtypes = {torch.bfloat16: ml_dtypes.bfloat16, torch.float8_e4m3fn: ml_dtypes.float8_e4m3fn,
              torch.float8_e5m2: ml_dtypes.float8_e5m2, torch.float16: np.float16,
              torch.float32: np.float32, torch.float64: np.float64, torch.int8: np.int8,
              torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32,
              torch.int64: np.int64, torch.bool: np.bool_, torch.complex64: np.complex64}
    values = torch.tensor([[0.0, 1.5, -2.0], [448.0, 0.25, -0.5]])
    source = {str(t).removeprefix("torch."): (values != 0 if t == torch.bool else values.to(t))
              for t in dtypes}
    path = tmp_path / "from-torch.safetensors"
    save_torch(source, path)
    with pytest.warns(UncheckedCheckpointWarning):
        tensors, _ = load_tensors(path)
    for t, np_dtype in dtypes.items():
        got, want = tensors[str(t).removeprefix("torch.")], source[str(t).removeprefix("torch.")]
        assert got.dtype == np.dtype(np_dtype), t
        assert np.array_equal(got.astype(np.complex128), want.to(torch.complex128).numpy()), t

    # from Flax (JAX arrays), bf16 included
    import jax.numpy as jnp
    from safetensors.flax import save_file as save_flax

    save_flax({"w": jnp.arange(6, dtype=jnp.bfloat16).reshape(2, 3)}, tmp_path / "flax.safetensors")
    with pytest.warns(UncheckedCheckpointWarning):
        tensors, _ = load_tensors(tmp_path / "flax.safetensors")
    assert tensors["w"].dtype == ml_dtypes.bfloat16 and tensors["w"].astype(int).tolist() == [[0, 1, 2], [3, 4, 5]]

    # and back: our bf16 and float8 files are read by PyTorch through the library
    from safetensors.torch import load_file as load_torch
    ours = save_tensors(tmp_path / "ours.safetensors",
                        {"bf16": np.array([1.5, -2.0], ml_dtypes.bfloat16),
                         "f8": np.array([0.25, 448.0], ml_dtypes.float8_e4m3fn)})
    back = load_torch(ours)
    assert back["bf16"].dtype == torch.bfloat16 and back["bf16"].tolist() == [1.5, -2.0]
    assert back["f8"].dtype == torch.float8_e4m3fn and back["f8"].float().tolist() == [0.25, 448.0]


def test_orphaned_temporary_files_are_removed(saved):
    """A temporary file whose writer died is deleted by the next save or load of that
    checkpoint; one that a live writer holds is kept; other files are never touched."""
    import fcntl

    folder = saved.parent
    dead = folder / f".{saved.name}.abc123.tmp"
    dead.write_bytes(b"x" * 100)
    live = folder / f".{saved.name}.live42.tmp"
    live_fd = os.open(live, os.O_CREAT | os.O_RDWR)
    fcntl.flock(live_fd, fcntl.LOCK_EX)
    other = folder / ".other.safetensors.abc123.tmp"
    other.write_bytes(b"y")
    try:
        load_tensors(saved)
        assert not dead.exists() and live.exists() and other.exists()
        dead.write_bytes(b"x")
        save_tensors(saved, TENSORS)
        assert not dead.exists() and live.exists() and other.exists()
    finally:
        os.close(live_fd)
    assert remove_orphans(saved) == [live]
