"""Property test: mutated checkpoint files are refused with CheckpointError or, when the
mutation left the tensors intact, load exactly the original; never another exception, never
a wrong load. (Crafted hostile files are in test_checkpoint_hostile.py: random mutations
rarely find what an attacker builds on purpose.)"""

import json
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from d2l_utils.checkpoint import (CheckpointError, UncheckedCheckpointWarning, load_tensors,
                                  save_tensors)

EXAMPLES = 1200
ORIGINAL = {
    "dense0.weight": np.arange(12, dtype=np.float32).reshape(4, 3) / 7,
    "dense0.bias": np.array([1.5, -2.0, 0.25, 8.0], np.float32),
    "step": np.array([7], np.int64),
}
EXPECTED = {k: (v.shape, v.dtype) for k, v in ORIGINAL.items()}
with tempfile.TemporaryDirectory() as _folder:
    GOOD = save_tensors(Path(_folder) / "good.safetensors", ORIGINAL, {"epoch": "3"}).read_bytes()
HEADER_SIZE = int.from_bytes(GOOD[:8], "little")
HEADER = json.loads(GOOD[8:8 + HEADER_SIZE])


def _header_edit(draw_key, draw_value):
    header = json.loads(json.dumps(HEADER))
    name = sorted(k for k in header if k != "__metadata__")[draw_key % 3]
    field, value = draw_value
    header[name][field] = value
    raw = json.dumps(header, separators=(",", ":")).encode()
    return len(raw).to_bytes(8, "little") + raw + GOOD[8 + HEADER_SIZE:]


flip = st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)).map(
    lambda t: GOOD[:t[0]] + bytes([GOOD[t[0]] ^ t[1]]) + GOOD[t[0] + 1:])
truncate = st.integers(0, len(GOOD) - 1).map(lambda n: GOOD[:n])
append = st.binary(min_size=1, max_size=64).map(lambda b: GOOD + b)
header_values = st.one_of(
    st.tuples(st.just("dtype"), st.sampled_from(["F16", "F64", "I32", "I64", "U8", "BOOL", "XX"])),
    st.tuples(st.just("shape"), st.lists(st.integers(-2, 20), max_size=3)),
    st.tuples(st.just("data_offsets"), st.lists(st.integers(-8, 200), min_size=2, max_size=2)),
)
header_edit = st.builds(_header_edit, st.integers(0, 2), header_values)
garbage = st.binary(max_size=300)
mutations = st.one_of(flip, truncate, append, header_edit, garbage)
modes = st.sampled_from([{}, {"mmap": True}, {"names": ["dense0.bias"]}])


def test_mutated_files_are_refused_or_intact(tmp_path):
    seen = Counter()
    path = tmp_path / "mutated.safetensors"

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutations, modes)
    def check(data, mode):
        path.write_bytes(data)
        names = mode.get("names", list(ORIGINAL))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                tensors, meta = load_tensors(path, expected={k: EXPECTED[k] for k in names}, **mode)
        except CheckpointError as err:
            assert str(path) in str(err)
            seen["refused"] += 1
        else:
            assert all(np.array_equal(tensors[k], ORIGINAL[k]) and tensors[k].dtype == ORIGINAL[k].dtype
                       for k in names)
            if caught:  # the flip hit the checksum's key: the file is a plain safetensors file now
                assert [w.category for w in caught] == [UncheckedCheckpointWarning]
                assert meta["epoch"] == "3" and len(meta) == 2
                seen["intact, unverified"] += 1
            else:
                assert meta == {"epoch": "3"}
                seen["intact"] += 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mutated.safetensors"]

    check()
    print(f"{sum(seen.values())} mutated files: {dict(seen)}")
    assert sum(seen.values()) >= 1000, seen
    assert seen["refused"] > 900, seen
