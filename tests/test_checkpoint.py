"""d2l_utils.checkpoint: round trips, and one clear error for every kind of bad file."""

import json
import os

import numpy as np
import pytest

from d2l_utils.checkpoint import CHECKSUM_KEY, CheckpointError, load_tensors, save_tensors

RNG = np.random.default_rng(0)
TENSORS = {
    "dense0.weight": RNG.standard_normal((4, 3)).astype(np.float32),
    "dense0.bias": np.zeros(4, np.float32),
    "half": RNG.standard_normal(5).astype(np.float16),
    "steps": np.arange(3, dtype=np.int64),
    "mask": np.array([True, False]),
    "scalar": np.float64(2.5),
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


def test_header_without_checksum(saved):
    data = saved.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    del header["__metadata__"][CHECKSUM_KEY]
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(size)
    saved.write_bytes(data[:8] + raw + data[8 + size:])
    assert "no checksum" in _error(saved)


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
    """The safetensors library reads our files; its own files (no checksum) are refused."""
    from safetensors.numpy import load_file, save_file

    theirs = load_file(saved)
    for k, v in TENSORS.items():
        assert np.array_equal(theirs[k].reshape(np.shape(v)), v)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, plain)
    assert "no checksum" in _error(plain)
