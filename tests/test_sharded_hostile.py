"""Hostile input for the sharded-checkpoint loaders (d2l_utils/sharded/), written from their
public contract only:

* `torch_dcp.verify(folder)` and `torch_dcp.load_into(model, folder)`: every problem with a
  DCP checkpoint folder (`.metadata` + `__<rank>_<n>.distcp`) or its files is ONE
  CheckpointError naming the folder and the file or shard at fault; never another exception
  type, never a hang, never a silently wrong model (if it loads, the model holds exactly what
  was saved). A `.metadata` that is a valid pickle written to run code is out of scope; every
  pickle here holds harmless objects (a dict, an int, DCP's own dataclasses).
* `jax_orbax.restore_checked(read, stored, path, target)` and `jax_orbax.restore_latest(out,
  every, keep)`: the same rule for an Orbax checkpoint, naming the checkpoint and the array
  or file.

Each case is classified as one of
* STRICT: a CheckpointError naming the checkpoint (and the culprit), or a load that gives
  exactly what was saved. Anything else (another exception type, a hang, a load with other
  values) fails.
* GAP ("documented gap"): bytes flipped inside the array data of an Orbax file. Orbax keeps
  no checksum of the values (OCDBT checks CRC-32C on its b-tree nodes and manifests only),
  so such a file may load, with other values, without any error. (DCP keeps no checksum of
  its own either, but each tensor is a torch.save zip record with CRC-32s, which torch.load
  does not check and torch_dcp.verify does: those flips are STRICT and must raise.) The case
  passes on either outcome, as long as an error is a proper CheckpointError and nothing
  hangs; which of the two happened is printed (`-s` shows it) and recorded in GAP_OUTCOMES.
  Bytes flipped in a record's *header* region (zip headers, data.pkl, central directory) are
  STRICT.

No case may hang: every attempt runs in a thread with a time limit (TIMEOUT); then the FIFOs
of the case are opened for writing and closed, so that a reader blocked on one gets
end-of-file. The FIFO cases of each family (DCP, Orbax) are started together, so that their
hangs cost TIMEOUT once.
"""

from __future__ import annotations

import gc
import io
import os
import pickle
import random
import shutil
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from d2l_utils.checkpoint import CheckpointError
from d2l_utils.sharded import four_cpu_devices
from helpers import Later

# Four CPU devices, asked for before any test of this worker starts JAX (jax_orbax asks again).
four_cpu_devices()
jax_orbax = Later("d2l_utils.sharded.jax_orbax")
torch_dcp = Later("d2l_utils.sharded.torch_dcp")

# Orbax leaves read coroutines unawaited when a read fails: noise here, not a finding.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True, scope="module")
def _collect_orbax_leftovers():
    """Those coroutines are reported when the garbage collector finds them: collect them
    once the module's last test ends, under this module's filter, not during whichever test
    runs next."""
    yield
    gc.collect()

TIMEOUT = 60.0  # seconds before an attempt counts as a hang: honest ones take milliseconds, and a
# loaded machine must not turn them into hangs (a returning attempt never waits for it)
GAP_OUTCOMES: dict[str, str] = {}  # documented-gap case -> "error: ..." or "loaded: ..."
JUNK = bytes(random.Random(0).randrange(256) for _ in range(4096))


# ---------------------------------------------------------------------------------------
# Running an attempt: outcome, never a hang of the test run
# ---------------------------------------------------------------------------------------


def _unblock_fifos(folder: Path):
    """Open every FIFO below `folder` for writing and close it: a reader blocked in open()
    or read() on it then gets end-of-file."""
    for path in folder.rglob("*"):
        try:
            if path.is_fifo():
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
        except OSError:
            pass


def _start(fn):
    """Run `fn` in a thread of its own: (thread, box), box getting "ok" or "raised"."""
    box = {}

    def run():
        try:
            box["ok"] = fn()
        except BaseException as err:  # noqa: BLE001 (every kind is an outcome to judge)
            box["raised"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _finish(thread, box, folder: Path, deadline: float):
    """("ok", value) or ("raised", exception) or ("hang", None) once `deadline` is past."""
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        for _ in range(8):
            _unblock_fifos(folder)
            thread.join(0.1)
            if not thread.is_alive():
                break
        return "hang", None
    return ("ok", box["ok"]) if "ok" in box else ("raised", box["raised"])


def _attempt(fn, folder: Path):
    return _finish(*_start(fn), folder, time.monotonic() + TIMEOUT)


def _check(condition, message):
    """A failed check: the message only (pytest's rendering of the assertion's source can
    itself fail, in Python 3.11, after some of these errors)."""
    if not condition:
        pytest.fail(message, pytrace=False)


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__module__}.{type(err).__qualname__}: {text[:600]}"


def _judge_error(err: BaseException, checkpoint: Path, culprits):
    """The contract's demands on an error: one CheckpointError, naming the checkpoint and
    (where the case knows it) the file, shard or array at fault, without DCP's per-rank
    tracebacks."""
    _check(type(err) is CheckpointError or isinstance(err, CheckpointError), (
        f"not a CheckpointError: {_describe(err)}"))
    text = str(err)
    _check(str(checkpoint) in text, f"the checkpoint {checkpoint} is not named: {text[:600]}")
    if culprits:
        _check(any(c in text for c in culprits), (
            f"none of {culprits} is named: {text[:600]}"))
    _check("Traceback (most recent call last)" not in text, (
        f"a traceback inside the message, not one error: {text[:600]}"))


# ---------------------------------------------------------------------------------------
# DCP: a valid checkpoint, made once
# ---------------------------------------------------------------------------------------

S0, S1, META = "__0_0.distcp", "__0_1.distcp", ".metadata"


def _zip_layout(blob: bytes, base: int) -> dict:
    """Where the parts of one torch.save item (a zip archive) lie in its file."""
    z = zipfile.ZipFile(io.BytesIO(blob))
    parts = {}
    for info in z.infolist():
        h = info.header_offset
        name_len = int.from_bytes(blob[h + 26:h + 28], "little")
        extra_len = int.from_bytes(blob[h + 28:h + 30], "little")
        start = h + 30 + name_len + extra_len
        parts[info.filename.split("/", 1)[1]] = (base + h, base + start, info.compress_size)
    parts["central directory"] = (base + z.start_dir, base + z.start_dir, 0)
    return parts


@pytest.fixture(scope="module")
def dcp_good(tmp_path_factory, train_started):  # (train_started: the Orbax run starts now)
    """(the folder of a valid two-file DCP checkpoint, the model saved, its layout:
    {fqn: (file, offset, length, zip parts)})."""
    import torch.distributed.checkpoint as dcp

    model = torch_dcp.mlp(seed=0)
    path = tmp_path_factory.mktemp("dcp") / "checkpoint"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled")
        dcp.save({"model": model.state_dict()},
                 storage_writer=dcp.FileSystemWriter(path, thread_count=2))
    assert sorted(p.name for p in path.iterdir()) == [META, S0, S1]
    metadata = pickle.loads((path / META).read_bytes())
    layout = {}
    for index, info in metadata.storage_data.items():
        blob = (path / info.relative_path).read_bytes()[info.offset:info.offset + info.length]
        layout[index.fqn] = (info.relative_path, info.offset, info.length,
                             _zip_layout(blob, info.offset))
    return path, model, layout


def _first_item(layout, name):
    return min((v for v in layout.values() if v[0] == name), key=lambda v: v[1])


def _last_item(layout, name):
    return max((v for v in layout.values() if v[0] == name), key=lambda v: v[1])


# Damages: functions (folder, layout, outside) -> None, where `outside` is a scratch folder
# next to the checkpoint.

def _cut(name, where):
    def damage(folder, layout, outside):
        f = folder / name
        size = f.stat().st_size
        n = where(size, layout) if callable(where) else where
        f.write_bytes(f.read_bytes()[:n])
    return damage


def _flip(name, where, mask=0xFF):
    def damage(folder, layout, outside):
        f = folder / name
        data = bytearray(f.read_bytes())
        pos = where(len(data), layout)
        data[pos] ^= mask
        f.write_bytes(bytes(data))
    return damage


def _append(name, junk):
    def damage(folder, layout, outside):
        with (folder / name).open("ab") as out:
            out.write(junk(folder) if callable(junk) else junk)
    return damage


def _prepend(name, junk):
    def damage(folder, layout, outside):
        f = folder / name
        f.write_bytes(junk + f.read_bytes())
    return damage


def _write(name, content):
    def damage(folder, layout, outside):
        (folder / name).write_bytes(content(folder) if callable(content) else content)
    return damage


def _unlink(name):
    return lambda folder, layout, outside: (folder / name).unlink()


def _as_directory(name):
    def damage(folder, layout, outside):
        (folder / name).unlink()
        (folder / name).mkdir()
        (folder / name / "inside").write_bytes(b"x" * 100_000)
    return damage


def _symlink_loop(name):
    def damage(folder, layout, outside):
        (folder / name).unlink()
        os.symlink(name, folder / name)  # points at itself
    return damage


def _symlink_pair_loop(name):
    def damage(folder, layout, outside):
        (folder / name).unlink()
        os.symlink("loop-b", folder / name)
        os.symlink(name, folder / "loop-b")
    return damage


def _dangling(name):
    def damage(folder, layout, outside):
        (folder / name).unlink()
        os.symlink(outside / "nowhere" / name, folder / name)
    return damage


def _fifo(name):
    def damage(folder, layout, outside):
        (folder / name).unlink()
        os.mkfifo(folder / name)
    return damage


def _symlink_to_copy(name):
    def damage(folder, layout, outside):
        outside.mkdir(exist_ok=True)
        shutil.move(folder / name, outside / name)
        os.symlink(outside / name, folder / name)
    return damage


def _rename(src, dst):
    return lambda folder, layout, outside: (folder / src).rename(folder / dst)


def _swap(a, b):
    def damage(folder, layout, outside):
        (folder / a).rename(folder / "swap.tmp")
        (folder / b).rename(folder / a)
        (folder / "swap.tmp").rename(folder / b)
    return damage


def _copy_over(src, dst):
    return lambda folder, layout, outside: shutil.copyfile(folder / src, folder / dst)


def _extra_file(name, content=b"hello\n"):
    def damage(folder, layout, outside):
        if content is None:
            (folder / name).mkdir()
        else:
            (folder / name).write_bytes(content(folder) if callable(content) else content)
    return damage


def _edit_metadata(edit):
    """A .metadata that is a pickle of DCP's own Metadata, with `edit` applied: harmless
    objects, written by this test, not code."""
    def damage(folder, layout, outside):
        metadata = pickle.loads((folder / META).read_bytes())
        metadata = edit(metadata, outside) or metadata
        (folder / META).write_bytes(pickle.dumps(metadata))
    return damage


def _move_storage(fqn, **changes):
    """Change the _StorageInfo (relative_path, offset, length) of one stored tensor."""
    def edit(metadata, outside):
        for index, info in list(metadata.storage_data.items()):
            if index.fqn == fqn:
                new = {k: (v(info, outside) if callable(v) else v) for k, v in changes.items()}
                metadata.storage_data[index] = replace(info, **new)
        return metadata
    return edit


def _drop_storage(fqn):
    def edit(metadata, outside):
        for index in [i for i in metadata.storage_data if i.fqn == fqn]:
            del metadata.storage_data[index]
        return metadata
    return edit


def _drop_tensor(fqn):
    def edit(metadata, outside):
        del metadata.state_dict_metadata[fqn]
        return metadata
    return edit


def _empty_metadata(metadata, outside):
    metadata.state_dict_metadata.clear()
    metadata.storage_data.clear()
    return metadata


def _then(*damages):
    def damage(folder, layout, outside):
        for d in damages:
            d(folder, layout, outside)
    return damage


def _data_pos(fqn, at=0.5):
    """A byte in the middle of the tensor data of `fqn` (inside archive/data/0), at a float's
    most significant byte, so that the flip changes the value a lot."""
    def where(size, layout):
        _, start, length = layout[fqn][3]["data/0"]
        return start + (int(length * at) // 4) * 4 + 3
    return where


STRICT, GAP = "strict", "gap"

# (id, damage, expectation, verify must raise, culprits: any of them must be named;
#  S1F / S0F: the file's name or a tensor it holds)
S1F = [S1, "model.0.weight", "model.4.weight", "model.0.bias", "model.2.bias", "model.4.bias"]
S0F = [S0, "model.2.weight"]
MF = [META]

DCP_CASES = [
    # --- a shard file missing, empty, cut short at several points
    ("shard1-missing", _unlink(S1), STRICT, True, S1F),
    ("shard0-missing", _unlink(S0), STRICT, True, S0F),
    ("shard1-empty", _write(S1, b""), STRICT, True, S1F),
    ("shard0-empty", _write(S0, b""), STRICT, True, S0F),
    ("shard1-cut-1-byte-short", _cut(S1, lambda n, L: n - 1), STRICT, True, S1F),
    ("shard0-cut-1-byte-short", _cut(S0, lambda n, L: n - 1), STRICT, True, S0F),
    ("shard1-cut-in-half", _cut(S1, lambda n, L: n // 2), STRICT, True, S1F),
    ("shard1-cut-to-1-byte", _cut(S1, 1), STRICT, True, S1F),
    ("shard1-cut-inside-first-header", _cut(S1, 20), STRICT, True, S1F),
    ("shard1-cut-before-last-item", _cut(S1, lambda n, L: _last_item(L, S1)[1]), STRICT, True,
     S1F),
    ("shard1-cut-inside-last-central-dir",
     _cut(S1, lambda n, L: _last_item(L, S1)[3]["central directory"][0] + 10), STRICT, True, S1F),
    ("shard1-cut-after-first-item-data",
     _cut(S1, lambda n, L: sum(_first_item(L, S1)[3]["data/0"][1:])), STRICT, True, S1F),
    # --- extended with junk, or shifted by junk in front
    ("shard1-junk-appended", _append(S1, JUNK[:100]), STRICT, False, S1F),
    ("shard0-junk-appended-4k", _append(S0, JUNK), STRICT, False, S0F),
    ("shard1-own-copy-appended", _append(S1, lambda f: (f / S1).read_bytes()), STRICT, False,
     S1F),
    ("shard1-junk-prepended", _prepend(S1, JUNK[:64]), STRICT, False, S1F),
    ("shard0-1-byte-prepended", _prepend(S0, b"\0"), STRICT, False, S0F),
    # --- bytes flipped inside tensor data: STRICT since verify checks the records' CRC-32s
    ("shard1-flip-data-of-0.weight", _flip(S1, _data_pos("model.0.weight")), STRICT, True, S1F),
    ("shard1-flip-data-of-4.bias", _flip(S1, _data_pos("model.4.bias", 0.0)), STRICT, True, S1F),
    ("shard0-flip-data-of-2.weight", _flip(S0, _data_pos("model.2.weight", 0.9)), STRICT, True,
     S0F),
    # --- bytes flipped inside the header region of an item (zip headers, data.pkl)
    ("shard1-flip-zip-magic-first-item", _flip(S1, lambda n, L: 0), STRICT, False, S1F),
    ("shard1-flip-zip-magic-middle-item",
     _flip(S1, lambda n, L: L["model.0.bias"][1]), STRICT, False, S1F),
    ("shard1-flip-local-header-name",
     _flip(S1, lambda n, L: L["model.0.weight"][3]["data.pkl"][0] + 32, 0x01), STRICT, False,
     S1F),
    ("shard1-flip-inside-data.pkl-start",
     _flip(S1, lambda n, L: L["model.0.weight"][3]["data.pkl"][1] + 2, 0x01), STRICT, False, S1F),
    ("shard1-flip-inside-data.pkl-middle",
     _flip(S1, lambda n, L: L["model.0.weight"][3]["data.pkl"][1]
           + L["model.0.weight"][3]["data.pkl"][2] // 2, 0x01), STRICT, False, S1F),
    ("shard0-flip-inside-data.pkl-end",
     _flip(S0, lambda n, L: L["model.2.weight"][3]["data.pkl"][1]
           + L["model.2.weight"][3]["data.pkl"][2] - 3, 0x01), STRICT, False, S0F),
    ("shard1-flip-data-record-header",
     _flip(S1, lambda n, L: L["model.0.weight"][3]["data/0"][0] + 28, 0x10), STRICT, False, S1F),
    ("shard1-flip-byteorder",
     _flip(S1, lambda n, L: L["model.0.weight"][3]["byteorder"][1], 0x20), STRICT, False, S1F),
    ("shard1-flip-central-directory",
     _flip(S1, lambda n, L: L["model.0.weight"][3]["central directory"][0] + 1), STRICT, False,
     S1F),
    ("shard1-flip-end-of-central-dir",
     _flip(S1, lambda n, L: L["model.0.weight"][1] + L["model.0.weight"][2] - 22), STRICT,
     False, S1F),
    ("shard1-flip-central-dir-offset-field",
     _flip(S1, lambda n, L: L["model.4.bias"][1] + L["model.4.bias"][2] - 22 + 16, 0x01),
     STRICT, False, S1F),
    # --- a shard file that is not a regular file
    ("shard1-is-a-directory", _as_directory(S1), STRICT, True, S1F),
    ("shard1-symlink-loop", _symlink_loop(S1), STRICT, True, S1F),
    ("shard1-symlink-pair-loop", _symlink_pair_loop(S1), STRICT, True, S1F),
    ("shard1-dangling-symlink", _dangling(S1), STRICT, True, S1F),
    ("shard1-fifo", _fifo(S1), STRICT, True, S1F),
    ("shard0-fifo", _fifo(S0), STRICT, True, S0F),
    ("shard1-symlink-to-good-copy", _symlink_to_copy(S1), STRICT, False, S1F),
    # --- files renamed between ranks, or replaced by another rank's
    ("shards-swapped", _swap(S0, S1), STRICT, False, S0F + S1F),
    ("shard1-renamed-to-rank1", _rename(S1, "__1_0.distcp"), STRICT, True, S1F),
    ("shard0-renamed-to-__0_2", _rename(S0, "__0_2.distcp"), STRICT, True, S0F),
    ("shard0-replaced-by-shard1", _copy_over(S1, S0), STRICT, False, S0F),
    ("shard1-replaced-by-shard0", _copy_over(S0, S1), STRICT, True, S1F),
    # --- extra, unexpected files (not a problem in themselves: a correct load is fine)
    ("extra-junk-shard", _extra_file("__0_2.distcp", JUNK), STRICT, False, None),
    ("extra-rank1-copy", _extra_file("__1_0.distcp", lambda f: (f / S1).read_bytes()), STRICT,
     False, None),
    ("extra-text-file", _extra_file("README.txt"), STRICT, False, None),
    ("extra-subdirectory", _extra_file("__1_1.distcp", None), STRICT, False, None),
    ("extra-fifo", lambda f, L, o: os.mkfifo(f / "__1_1.distcp"), STRICT, False, None),
    ("extra-metadata-backup", _extra_file(".metadata.bak", JUNK[:50]), STRICT, False, None),
    # --- .metadata missing, empty, cut short, garbage, not a pickle, a pickle of another type
    ("metadata-missing", _unlink(META), STRICT, True, None),
    ("metadata-empty", _write(META, b""), STRICT, True, MF),
    ("metadata-cut-1-byte-short", _cut(META, lambda n, L: n - 1), STRICT, True, MF),
    ("metadata-cut-in-half", _cut(META, lambda n, L: n // 2), STRICT, True, MF),
    ("metadata-cut-to-1-byte", _cut(META, 1), STRICT, True, MF),
    ("metadata-cut-to-2-bytes", _cut(META, 2), STRICT, True, MF),
    ("metadata-garbage", _write(META, JUNK[:1756]), STRICT, True, MF),
    ("metadata-text", _write(META, b"this is not a pickle\n"), STRICT, True, MF),
    ("metadata-json", _write(META, b'{"state_dict_metadata": {}}'), STRICT, True, MF),
    ("metadata-junk-appended", _append(META, JUNK[:100]), STRICT, False, MF),
    ("metadata-flip-middle", _flip(META, lambda n, L: n // 2), STRICT, False, MF),
    ("metadata-pickle-of-dict", _write(META, pickle.dumps({"a": 1})), STRICT, True, MF),
    ("metadata-pickle-of-empty-dict", _write(META, pickle.dumps({})), STRICT, True, MF),
    ("metadata-pickle-of-int", _write(META, pickle.dumps(42)), STRICT, True, MF),
    ("metadata-pickle-of-None", _write(META, pickle.dumps(None)), STRICT, True, MF),
    ("metadata-pickle-of-list", _write(META, pickle.dumps([1, 2, 3])), STRICT, True, MF),
    ("metadata-pickle-of-str", _write(META, pickle.dumps("metadata")), STRICT, True, MF),
    ("metadata-pickle-proto0-tuple", _write(META, pickle.dumps((1, "a"), protocol=0)), STRICT,
     True, MF),
    ("metadata-is-a-directory", _then(_unlink(META), lambda f, L, o: (f / META).mkdir()),
     STRICT, True, MF),
    ("metadata-dangling-symlink", _dangling(META), STRICT, True, MF),
    ("metadata-symlink-loop", _symlink_loop(META), STRICT, True, MF),
    ("metadata-fifo", _fifo(META), STRICT, True, MF),
    # --- .metadata: DCP's own Metadata, with promises the files do not keep
    ("metadata-promises-nothing", _edit_metadata(_empty_metadata), STRICT, False,
     MF + ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]),
    ("metadata-lacks-tensor-4.bias", _edit_metadata(_drop_tensor("model.4.bias")), STRICT,
     False, MF + ["4.bias"]),
    ("metadata-lacks-storage-of-0.weight", _edit_metadata(_drop_storage("model.0.weight")),
     STRICT, False, MF + ["0.weight"]),
    ("metadata-offset-past-end", _edit_metadata(_move_storage("model.4.bias", offset=10**6)),
     STRICT, True, S1F + MF),
    ("metadata-negative-offset", _edit_metadata(_move_storage("model.4.bias", offset=-100)),
     STRICT, True, S1F + MF),
    ("metadata-negative-length", _edit_metadata(_move_storage("model.4.bias", length=-5)),
     STRICT, True, S1F + MF),
    ("metadata-zero-length", _edit_metadata(_move_storage("model.4.bias", length=0)), STRICT,
     True, S1F + MF),
    ("metadata-huge-length", _edit_metadata(_move_storage("model.4.bias", length=2**62)),
     STRICT, True, S1F + MF),
    ("metadata-points-to-missing-file",
     _edit_metadata(_move_storage("model.4.bias", relative_path="__7_7.distcp")), STRICT, True,
     ["__7_7.distcp", "4.bias"]),
    ("metadata-points-outside-folder-missing",
     _edit_metadata(_move_storage("model.4.bias", relative_path="../nowhere.distcp")), STRICT,
     True, ["nowhere.distcp", "4.bias"]),
    ("metadata-points-to-absolute-path",
     _edit_metadata(_move_storage("model.4.bias", relative_path="/etc/hostname")), STRICT,
     False, ["/etc/hostname", "4.bias"]),
    ("metadata-points-to-the-folder",
     _edit_metadata(_move_storage("model.4.bias", relative_path=".")), STRICT, True,
     ["4.bias", S1]),
    ("metadata-points-to-itself",
     _edit_metadata(_move_storage("model.4.bias", relative_path=META, offset=0)), STRICT,
     False, ["4.bias", META]),
    ("metadata-points-to-wrong-item",  # 4.bias's entry at 2.bias's bytes (another shape)
     _edit_metadata(_move_storage("model.4.bias", offset=11387, length=1705)), STRICT, False,
     ["4.bias", S1]),
    ("metadata-relative-path-not-a-str",
     _edit_metadata(_move_storage("model.4.bias", relative_path=12345)), STRICT, True,
     ["4.bias", "12345", MF[0]]),
]


def _model_variant(sizes=(20, 64, 32, 10), dtype=None):
    def make():
        import torch

        model = torch_dcp.mlp(sizes, seed=1)
        return model.to({"float64": torch.float64, "float16": torch.float16,
                         "bfloat16": torch.bfloat16}[dtype]) if dtype else model
    return make


# (id, model factory, culprits)
DCP_MODEL_CASES = [
    ("wider-hidden-128", _model_variant((20, 128, 32, 10)), ["0.weight"]),
    ("narrower-hidden-32", _model_variant((20, 32, 32, 10)), ["0.weight"]),
    ("other-input-width-30", _model_variant((30, 64, 32, 10)), ["0.weight"]),
    ("other-output-width-5", _model_variant((20, 64, 32, 5)), ["4.weight"]),
    ("an-extra-layer", _model_variant((20, 64, 32, 10, 5)), ["6.weight", "6.bias"]),
    ("a-layer-fewer", _model_variant((20, 64, 32)), ["4.weight", "4.bias"]),  # strict: a
    # correct load of the layers it has is fine too
    ("float64", _model_variant(dtype="float64"), ["weight", "bias", "dtype", "float"]),
    ("float16", _model_variant(dtype="float16"), ["weight", "bias", "dtype", "float"]),
    ("bfloat16", _model_variant(dtype="bfloat16"), ["weight", "bias", "dtype", "float"]),
]


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _exact(model, saved) -> str | None:
    """None when every tensor of `model` holds exactly the saved values (compared as
    float64: a float64 model holding the saved float32 values exactly is a correct load),
    else what differs."""
    import torch

    want = saved.state_dict()
    for name, got in model.state_dict().items():
        if name not in want:
            return f"{name}: not in the saved model"
        if got.shape != want[name].shape:
            return f"{name}: shape {tuple(got.shape)}, saved {tuple(want[name].shape)}"
        if not torch.equal(got.detach().to(torch.float64), want[name].to(torch.float64)):
            return f"{name}: other values (dtype {got.dtype}, saved {want[name].dtype})"
    return None


def _unchanged(model, before) -> str | None:
    import torch

    for name, value in model.state_dict().items():
        if not torch.equal(value, before[name]):
            return name
    return None


# ---------------------------------------------------------------------------------------
# Running the cases. A case whose file is a FIFO is started with all the other FIFO cases of
# its family at once, by the module fixtures `dcp_fifo_outcomes` and `orbax_fifo_outcomes`
# (so that hangs cost TIMEOUT once per family); every other case runs in its own test.
# ---------------------------------------------------------------------------------------


def _dcp_prepare(request, tmp: Path, which: str, damage):
    """Copy the good checkpoint into `tmp`, damage it with `damage`:
    (function to run, the checkpoint folder, context for judging)."""
    src, saved, layout = request.getfixturevalue("dcp_good")
    folder = tmp / "checkpoint"
    shutil.copytree(src, folder)
    damage(folder, layout, tmp / "outside")
    if which == "dcp-verify":
        return (lambda: torch_dcp.verify(folder)), folder, None
    fresh = _model_variant()()
    return (lambda: torch_dcp.load_into(fresh, folder)), folder, (fresh, _snapshot(fresh), saved)


def _checked_prepare(request, tmp: Path, which: str, role: str, damage):
    src, saved = request.getfixturevalue("orbax_good")
    path = tmp / "params"
    shutil.copytree(src, path)
    file = _files(path)[role]
    damage(file)
    target = jax_orbax.abstract(saved)
    return (lambda: _restore_checked(path, target)), path, _orbax_culprits(role, file)


def _latest_prepare(request, tmp: Path, which: str, role: str, damage):
    src, _ = request.getfixturevalue("orbax_run")
    out = tmp / "r"
    shutil.copytree(src, out, symlinks=True)
    roles = _files(out / "run" / "2" / "default")
    roles.update({k: v for k, v in _files(out / "run" / "2").items()
                  if k in ("_CHECKPOINT_METADATA", "commit_success.txt")})
    damage(roles[role])
    return ((lambda: jax_orbax.restore_latest(out, 1, 3)), out / "run",
            _orbax_culprits(role, roles[role]))


PREPARE = {"dcp-load": _dcp_prepare, "dcp-verify": _dcp_prepare,
           "checked": _checked_prepare, "latest": _latest_prepare}


def _damage_of(which: str, case_id: str) -> tuple:
    """What damages case `case_id` of entry point `which`, as PREPARE[which] takes it: (the
    damage,) for DCP, (the file's role, the damage) for Orbax."""
    if "dcp" in which:
        return (DCP_BY_ID[case_id][1],)
    return ORBAX_BY_ID[case_id][1:3]


def _outcome(request, tmp: Path, which: str, case_id: str, *damage):
    """((outcome, value), checkpoint, context) of case `case_id`, its checkpoint damaged as
    `damage` says (the test's own parameters, as PREPARE[which] takes them). A FIFO case was
    run by its family's module fixture, from the same entry of DCP_CASES or ORBAX_CASES."""
    key = (which, case_id)
    if key in FIFO_KEYS:
        family = "dcp" if "dcp" in which else "orbax"
        assert _damage_of(which, case_id) == damage, f"{case_id}: not the case its fixture ran"
        return request.getfixturevalue(f"{family}_fifo_outcomes")[key]
    fn, checkpoint, context = PREPARE[which](request, tmp, which, *damage)
    return _attempt(fn, tmp), checkpoint, context


def _run_fifo_cases(request, tmp_path_factory, keys):
    """Every FIFO case of `keys`, started at once, each in its own thread, given TIMEOUT in
    all."""
    started = {}
    for which, case_id in sorted(keys):
        tmp = tmp_path_factory.mktemp("fifo")
        fn, checkpoint, context = PREPARE[which](request, tmp, which, *_damage_of(which, case_id))
        started[(which, case_id)] = (_start(fn), tmp, checkpoint, context)
    deadline = time.monotonic() + TIMEOUT
    return {key: (_finish(thread, box, tmp, deadline), checkpoint, context)
            for key, ((thread, box), tmp, checkpoint, context) in started.items()}


@pytest.fixture(scope="module")
def dcp_fifo_outcomes(request, tmp_path_factory):
    return _run_fifo_cases(request, tmp_path_factory, {k for k in FIFO_KEYS if "dcp" in k[0]})


@pytest.fixture(scope="module")
def orbax_fifo_outcomes(request, tmp_path_factory):
    return _run_fifo_cases(request, tmp_path_factory,
                           {k for k in FIFO_KEYS if "dcp" not in k[0]})


def _record_gap(label, text):
    GAP_OUTCOMES[label] = text
    print(f"documented gap {label}: {text}")


def _judge_dcp_load(outcome, value, folder, context, expectation, culprits, label):
    fresh, before, saved = context
    _check(outcome != "hang", f"load_into hung (over {TIMEOUT} s)")
    if outcome == "raised":
        if expectation == GAP:
            _record_gap(label, f"error: {_describe(value)[:200]}")
        _judge_error(value, folder, culprits)
        changed = _unchanged(fresh, before)
        _check(changed is None, f"a CheckpointError was raised, but the model was changed "
                                f"({changed}): {str(value)[:300]}")
        return
    wrong = _exact(fresh, saved)
    if expectation == GAP:
        _record_gap(label, f"loaded without an error: {wrong or 'exact'}")
        return
    _check(wrong is None, f"loaded without an error, silently wrong: {wrong}")


@pytest.mark.parametrize("case_id, damage, expectation, culprits",
                         [(case_id, damage, expectation, culprits)
                          for case_id, damage, expectation, _, culprits in DCP_CASES],
                         ids=[c[0] for c in DCP_CASES])
def test_dcp_load_into(request, tmp_path, case_id, damage, expectation, culprits):
    (outcome, value), folder, context = _outcome(request, tmp_path, "dcp-load", case_id, damage)
    _judge_dcp_load(outcome, value, folder, context, expectation, culprits,
                    f"dcp load_into {case_id}")


@pytest.mark.parametrize("case_id, damage, must_raise, culprits",
                         [(case_id, damage, must_raise, culprits)
                          for case_id, damage, _, must_raise, culprits in DCP_CASES],
                         ids=[c[0] for c in DCP_CASES])
def test_dcp_verify(request, tmp_path, case_id, damage, must_raise, culprits):
    """verify: the file-level problems it must see (missing, short, not a regular file,
    .metadata unreadable or promising what the files do not hold) are a CheckpointError; for
    content problems it may pass (it reads no tensor), but never with another exception
    type, and it never hangs."""
    (outcome, value), folder, _ = _outcome(request, tmp_path, "dcp-verify", case_id, damage)
    _check(outcome != "hang", f"verify hung (over {TIMEOUT} s)")
    if outcome == "raised":
        _judge_error(value, folder, culprits)
    else:
        _check(not must_raise, "verify passed a checkpoint whose files break its promises")


@pytest.mark.parametrize("case_id, make_model, culprits", DCP_MODEL_CASES,
                         ids=[c[0] for c in DCP_MODEL_CASES])
def test_dcp_load_into_another_model(dcp_good, tmp_path, case_id, make_model, culprits):
    src, saved, _ = dcp_good
    fresh = make_model()
    before = _snapshot(fresh)
    outcome, value = _attempt(lambda: torch_dcp.load_into(fresh, src), tmp_path)
    _judge_dcp_load(outcome, value, src, (fresh, before, saved), STRICT, culprits, case_id)


@pytest.mark.parametrize("where", ["does-not-exist", "a-file", "an-empty-folder",
                                   "a-symlink-loop", "a-fifo"])
def test_dcp_the_folder_itself(dcp_good, tmp_path, where):
    """The checkpoint path is not a checkpoint folder at all."""
    folder = tmp_path / "checkpoint"
    if where == "a-file":
        folder.write_bytes(JUNK[:100])
    elif where == "an-empty-folder":
        folder.mkdir()
    elif where == "a-symlink-loop":
        os.symlink("checkpoint", folder)
    elif where == "a-fifo":
        os.mkfifo(folder)
    for fn in (torch_dcp.verify, lambda p: torch_dcp.load_into(torch_dcp.mlp(seed=1), p)):
        outcome, value = _attempt(lambda: fn(folder), tmp_path)
        _check(outcome == "raised", f"{outcome}: {value!r}"[:300])
        _judge_error(value, folder, None)


# ---------------------------------------------------------------------------------------
# Orbax: a valid StandardCheckpointer checkpoint (sharded over four devices), and a
# CheckpointManager run of two steps made by the module's own `train`, each made once
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orbax_good(tmp_path_factory):
    """(folder of a StandardCheckpointer checkpoint, the saved parameters as NumPy)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    params = jax_orbax.init(seed=0)
    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("x",))

    def put(a):
        spec = PartitionSpec("x") if a.shape[0] % len(devices) == 0 else PartitionSpec()
        return jax.device_put(a, NamedSharding(mesh, spec))

    path = tmp_path_factory.mktemp("orbax") / "params"
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, jax.tree_util.tree_map(put, params))
    checkpointer.wait_until_finished()
    return path, jax.tree_util.tree_map(np.asarray, params)


@pytest.fixture(scope="module")
def train_started(tmp_path_factory):
    """The Orbax run (`python -m d2l_utils.sharded.jax_orbax train`, two steps), started in
    the background when the module's first case starts: the DCP cases run meanwhile."""
    scratch = tmp_path_factory.mktemp("scratch")
    env = dict(os.environ, D2L_SCRATCH=str(scratch))
    proc = subprocess.Popen([sys.executable, "-m", "d2l_utils.sharded.jax_orbax", "train", "r",
                             "--steps", "2", "--every", "1", "--keep", "3"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield scratch, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def orbax_run(train_started):
    """(out folder of a `train` run with steps 1 and 2 finished, restore_latest's result on
    an untouched copy of it)."""
    scratch, proc = train_started
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    out = scratch / "r"
    assert sorted(p.name for p in (out / "run").iterdir()) == ["1", "2"]
    pristine = scratch / "pristine"
    shutil.copytree(out, pristine)
    return out, jax_orbax.restore_latest(pristine, 1, 3)


def _files(item: Path):
    """Roles of the files in an Orbax item folder: data files (the largest and the smallest
    of ocdbt.process_0/d/, the one in d/), and the metadata files."""
    data = sorted((p for p in item.rglob("*") if p.is_file() and p.parent.name == "d"
                   and p.parent.parent.name.startswith("ocdbt.process")),
                  key=lambda p: (p.stat().st_size, p.name))
    roles = {}
    if data:
        roles.update({"data-largest": data[-1], "data-smallest": data[0]})
    if (item / "d").is_dir():
        roles["top-d-file"] = sorted((item / "d").iterdir())[0]
    for name in ("_METADATA", "manifest.ocdbt", "ocdbt.process_0/manifest.ocdbt", "_sharding",
                 "array_metadatas/process_0", "commit_success.txt", "_CHECKPOINT_METADATA"):
        if (item / name).exists():
            roles[name] = item / name
    return roles


def _o_cut(frac=None, n=None):
    def damage(f: Path):
        size = f.stat().st_size
        f.write_bytes(f.read_bytes()[: (n if n is not None else int(size * frac))])
    return damage


def _o_flip(frac, mask=0xFF):
    def damage(f: Path):
        data = bytearray(f.read_bytes())
        data[min(len(data) - 1, int(len(data) * frac))] ^= mask
        f.write_bytes(bytes(data))
    return damage


def _o_write(content):
    return lambda f: f.write_bytes(content)


def _o_garbage(f: Path):
    f.write_bytes(JUNK[: max(16, f.stat().st_size)])


def _o_append(junk):
    def damage(f: Path):
        with f.open("ab") as out:
            out.write(junk)
    return damage


def _o_unlink(f: Path):
    f.unlink()


def _o_dir(f: Path):
    f.unlink()
    f.mkdir()


def _o_dangling(f: Path):
    f.unlink()
    os.symlink(f.parent / "nowhere" / f.name, f)


def _o_loop(f: Path):
    f.unlink()
    os.symlink(f.name, f)


def _o_fifo(f: Path):
    f.unlink()
    os.mkfifo(f)


BOTH, LATEST, CHECKED = ("checked", "latest"), ("latest",), ("checked",)
DATA_DAMAGES = [
    ("missing", _o_unlink, STRICT),
    ("emptied", _o_write(b""), STRICT),
    ("cut-in-half", _o_cut(0.5), STRICT),
    ("cut-1-byte-short", _o_cut(n=-1), STRICT),
    ("junk-appended", _o_append(JUNK[:100]), STRICT),
    ("junk-replaced", _o_garbage, STRICT),
    # DOCUMENTED GAP: bytes flipped inside the stored data (Orbax's OCDBT keeps CRC-32C
    # checksums of its b-tree nodes and manifests, not of the values)
    ("flip-middle", _o_flip(0.5), GAP),
    ("flip-near-start", _o_flip(0.02), GAP),
    ("is-a-directory", _o_dir, STRICT),
    ("dangling-symlink", _o_dangling, STRICT),
    ("symlink-loop", _o_loop, STRICT),
    ("fifo", _o_fifo, STRICT),
]
META_DAMAGES = [
    ("missing", _o_unlink, STRICT),
    ("emptied", _o_write(b""), STRICT),
    ("cut-in-half", _o_cut(0.5), STRICT),
    ("garbage", _o_garbage, STRICT),
    ("flip-middle", _o_flip(0.5, 0x01), STRICT),
    ("junk-appended", _o_append(JUNK[:100]), STRICT),
    ("is-a-directory", _o_dir, STRICT),
    ("fifo", _o_fifo, STRICT),
]

# (id, role, damage, expectation, entry points: restore_checked and/or restore_latest)
ORBAX_CASES = []
for role in ("data-largest", "top-d-file"):
    ORBAX_CASES += [(f"{role}-{name}", role, d, e, BOTH) for name, d, e in DATA_DAMAGES]
ORBAX_CASES += [(f"data-smallest-{name}", "data-smallest", d, e, BOTH)
                for name, d, e in DATA_DAMAGES if name in ("missing", "flip-middle")]
# restore_checked's caller reads _METADATA and _CHECKPOINT_METADATA itself (to pass
# `stored`); damage to those is restore_latest's, end to end. A StandardCheckpointer
# checkpoint has no _sharding.
for role in ("_METADATA", "_CHECKPOINT_METADATA", "_sharding"):
    ORBAX_CASES += [(f"{role}-{name}", role, d, e, LATEST) for name, d, e in META_DAMAGES
                    if name != "fifo" or role != "_sharding"]
for role in ("manifest.ocdbt", "ocdbt.process_0/manifest.ocdbt", "array_metadatas/process_0"):
    ORBAX_CASES += [(f"{role}-{name}", role, d, e,
                     BOTH if name in ("missing", "garbage", "cut-in-half", "fifo") else LATEST)
                    for name, d, e in META_DAMAGES
                    if name != "fifo" or role == "manifest.ocdbt"]
# (fewer variants of the files that the cases above already show to be read the same way)
ORBAX_CASES = [c for c in ORBAX_CASES
               if not (c[1] in ("_sharding", "ocdbt.process_0/manifest.ocdbt")
                       and c[0].rsplit("-", 1)[-1] in ("half", "appended"))]
ORBAX_CASES += [
    ("_METADATA-json-list", "_METADATA", _o_write(b"[]"), STRICT, LATEST),
    ("_METADATA-json-int", "_METADATA", _o_write(b"42"), STRICT, LATEST),
    ("_METADATA-json-empty-object", "_METADATA", _o_write(b"{}"), STRICT, LATEST),
    ("_METADATA-json-null", "_METADATA", _o_write(b"null"), STRICT, LATEST),
    ("_CHECKPOINT_METADATA-json-list", "_CHECKPOINT_METADATA", _o_write(b"[]"), STRICT,
     LATEST),
    ("commit_success.txt-missing", "commit_success.txt", _o_unlink, STRICT, LATEST),
]
ORBAX_BY_ID = {c[0]: c for c in ORBAX_CASES}
DCP_BY_ID = {c[0]: c for c in DCP_CASES}
CHECKED_CASES = [c[:4] for c in ORBAX_CASES if "checked" in c[4]]
LATEST_CASES = [c[:4] for c in ORBAX_CASES if "latest" in c[4]]
FIFO_KEYS = ({(w, c[0]) for c in DCP_CASES if "fifo" in c[0] for w in ("dcp-load", "dcp-verify")}
             | {("checked", c[0]) for c in CHECKED_CASES if "fifo" in c[0]}
             | {("latest", c[0]) for c in LATEST_CASES if "fifo" in c[0]})


def _orbax_culprits(role: str, file: Path):
    """An array name (params.Dense_0.kernel or params/Dense_0/kernel: "Dense_" is in both)
    or the file's name. A file of the top-level d/ is one of the OCDBT index's files: when it
    is gone only the manifest (binary) knows its name, so naming the index's manifest counts."""
    extra = ["manifest.ocdbt"] if role == "top-d-file" else []
    return [file.name, role.split("/")[-1], "Dense_", *extra]


def _same_tree(got, want) -> str | None:
    """None when `got` holds exactly `want`'s arrays (names, shapes, dtypes, values)."""
    import jax
    import numpy as np

    got_leaves = jax.tree_util.tree_flatten_with_path(got)[0]
    want_leaves = jax.tree_util.tree_flatten_with_path(want)[0]
    if [p for p, _ in got_leaves] != [p for p, _ in want_leaves]:
        return "another tree of arrays"
    for (path, a), (_, b) in zip(got_leaves, want_leaves):
        a = np.asarray(a)
        name = jax.tree_util.keystr(path)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{name}: {a.shape} {a.dtype}, saved {b.shape} {b.dtype}"
        if not np.array_equal(a, b):
            return f"{name}: other values"
    return None


def _orbax_judge(outcome, value, checkpoint, culprits, expectation, label, check_load, what):
    _check(outcome != "hang", f"{what} hung (over {TIMEOUT} s)")
    if outcome == "raised":
        if isinstance(value, pytest.skip.Exception):
            raise value
        if expectation == GAP:
            _record_gap(label, f"error: {_describe(value)[:200]}")
        _judge_error(value, checkpoint, culprits)
        return
    wrong = check_load(value)
    if expectation == GAP:
        _record_gap(label, f"loaded without an error: {wrong or 'exact'}")
        return
    _check(wrong is None, f"{what} returned without an error, silently wrong: {wrong}")


def _restore_checked(path: Path, target):
    """restore_checked as its public caller uses it: jax_orbax.restore reads the checkpoint's
    metadata tree (after the same checks of the folder) and passes it on."""
    return jax_orbax.restore(path, target)


@pytest.mark.parametrize("case_id, role, damage, expectation", CHECKED_CASES,
                         ids=[c[0] for c in CHECKED_CASES])
def test_orbax_restore_checked_damaged(request, tmp_path, case_id, role, damage, expectation):
    (outcome, value), path, culprits = _outcome(request, tmp_path, "checked", case_id, role,
                                                damage)
    _, saved = request.getfixturevalue("orbax_good")
    _orbax_judge(outcome, value, path, culprits, expectation, f"restore_checked {case_id}",
                 lambda got: _same_tree(got, saved), "restore_checked")


@pytest.mark.parametrize("case_id, role, damage, expectation", LATEST_CASES,
                         ids=[c[0] for c in LATEST_CASES])
def test_orbax_restore_latest_damaged(request, tmp_path, case_id, role, damage, expectation):
    """The newest step (2) damaged: a CheckpointError naming the run folder, or exactly the
    untouched result (same steps, same step, same parameters). Quietly restoring step 1
    instead is a silently wrong load."""
    import jax
    import numpy as np

    (outcome, value), run, culprits = _outcome(request, tmp_path, "latest", case_id, role,
                                               damage)
    _, (steps, step, params) = request.getfixturevalue("orbax_run")
    want = {"steps": steps, "step": step}

    def check(result):
        got_steps, got_step, got_params = result
        if {"steps": got_steps, "step": got_step} != want:
            return f"steps {got_steps}, step {got_step}: untouched gives {want}"
        return _same_tree(got_params, jax.tree_util.tree_map(np.asarray, params))

    _orbax_judge(outcome, value, run, culprits, expectation, f"restore_latest {case_id}",
                 check, "restore_latest")


def _target_variant(kind):
    import jax
    import jax.numpy as jnp

    def make(saved):
        target = jax_orbax.abstract(saved)
        layers = target["params"]
        if kind == "extra-array":
            layers["Dense_3"] = {"kernel": jax.ShapeDtypeStruct((10, 5), jnp.float32),
                                 "bias": jax.ShapeDtypeStruct((5,), jnp.float32)}
        elif kind == "extra-leaf":
            layers["Dense_0"]["scale"] = jax.ShapeDtypeStruct((64,), jnp.float32)
        elif kind == "missing-array":
            del layers["Dense_2"]["bias"]
        elif kind == "missing-layer":
            del layers["Dense_2"]
        elif kind == "renamed-array":
            layers["Dense_0"]["w"] = layers["Dense_0"].pop("kernel")
        elif kind == "wider":
            return jax_orbax.abstract(jax_orbax.init((20, 128, 32, 10)))
        elif kind == "transposed-kernel":
            k = layers["Dense_0"]["kernel"]
            layers["Dense_0"]["kernel"] = jax.ShapeDtypeStruct(k.shape[::-1], k.dtype,
                                                               sharding=k.sharding)
        elif kind == "scalar-bias":
            b = layers["Dense_2"]["bias"]
            layers["Dense_2"]["bias"] = jax.ShapeDtypeStruct((), b.dtype, sharding=b.sharding)
        elif kind.startswith("dtype-"):
            dtype = getattr(jnp, kind[len("dtype-"):])
            target = jax.tree_util.tree_map(
                lambda s: jax.ShapeDtypeStruct(s.shape, dtype, sharding=s.sharding), target)
        elif kind == "one-array-int8":
            b = layers["Dense_1"]["bias"]
            layers["Dense_1"]["bias"] = jax.ShapeDtypeStruct(b.shape, jnp.int8,
                                                             sharding=b.sharding)
        return target
    return make


# (kind, culprits: the layer in either spelling, params.Dense_0.w or params/Dense_0/w)
ORBAX_TARGET_CASES = [
    ("extra-array", ["Dense_3"]),
    ("extra-leaf", ["scale"]),
    ("missing-array", ["Dense_2"]),
    ("missing-layer", ["Dense_2"]),
    ("renamed-array", ["Dense_0"]),
    ("wider", ["Dense_0"]),
    ("transposed-kernel", ["Dense_0"]),
    ("scalar-bias", ["Dense_2"]),
    ("dtype-float16", ["Dense_"]),
    ("dtype-bfloat16", ["Dense_"]),
    ("dtype-int32", ["Dense_"]),
    ("one-array-int8", ["Dense_1"]),
    ("dtype-float64", ["Dense_"]),  # with x64 off JAX makes it float32: a correct load is fine
]


@pytest.mark.parametrize("kind, culprits", ORBAX_TARGET_CASES,
                         ids=[c[0] for c in ORBAX_TARGET_CASES])
def test_orbax_restore_checked_another_target(orbax_good, tmp_path, kind, culprits):
    src, saved = orbax_good
    target = _target_variant(kind)(saved)
    outcome, value = _attempt(lambda: _restore_checked(src, target), tmp_path)
    _orbax_judge(outcome, value, src, culprits, STRICT, kind,
                 lambda got: _same_tree(got, saved), "restore_checked")


@pytest.mark.parametrize("sizes", [(20, 128, 32, 10), (20, 64, 32), (20, 64, 32, 10, 5)],
                         ids=["wider", "a-layer-fewer", "an-extra-layer"])
def test_orbax_restore_latest_another_shape(orbax_run, tmp_path, sizes):
    src, _ = orbax_run
    outcome, value = _attempt(lambda: jax_orbax.restore_latest(src, 1, 3, sizes=sizes),
                              tmp_path)
    _check(outcome == "raised", f"{outcome}: restored into another shape")
    _judge_error(value, src / "run", ["Dense_"])


@pytest.mark.parametrize("where", ["does-not-exist", "a-file", "an-empty-folder"])
def test_orbax_restore_checked_not_a_checkpoint(orbax_good, tmp_path, where):
    """restore_checked on a path that is not a checkpoint (skipped where the caller's own
    metadata read fails first)."""
    _, saved = orbax_good
    path = tmp_path / "params"
    if where == "a-file":
        path.write_bytes(JUNK[:100])
    elif where == "an-empty-folder":
        path.mkdir()
    outcome, value = _attempt(lambda: _restore_checked(path, jax_orbax.abstract(saved)),
                              tmp_path)
    if outcome == "raised" and isinstance(value, pytest.skip.Exception):
        raise value
    _check(outcome == "raised", f"{outcome}: restored from {where}")
    _judge_error(value, path, None)


@pytest.mark.parametrize("where", ["no-run-folder", "empty-run-folder", "run-is-a-file",
                                   "only-an-unfinished-step", "step-folder-empty",
                                   "step-without-item"])
def test_orbax_restore_latest_no_checkpoint(orbax_run, tmp_path, where):
    src, _ = orbax_run
    out = tmp_path / "r"
    if where == "no-run-folder":
        out.mkdir()
    elif where == "empty-run-folder":
        (out / "run").mkdir(parents=True)
    elif where == "run-is-a-file":
        out.mkdir()
        (out / "run").write_bytes(b"x")
    elif where == "only-an-unfinished-step":
        (out / "run").mkdir(parents=True)
        shutil.copytree(src / "run" / "2", out / "run" / "2.orbax-checkpoint-tmp")
    elif where == "step-folder-empty":
        shutil.copytree(src, out)
        shutil.rmtree(out / "run" / "2")
        (out / "run" / "2").mkdir()
    elif where == "step-without-item":
        shutil.copytree(src, out)
        shutil.rmtree(out / "run" / "2" / "default")
    outcome, value = _attempt(lambda: jax_orbax.restore_latest(out, 1, 3), tmp_path)
    _check(outcome == "raised", f"{outcome}: {value!r}"[:300])
    _judge_error(value, out, None)


def test_zz_gap_outcomes_recorded():
    """Prints which documented-gap cases raised and which loaded (run with -s to see)."""
    for case, what in sorted(GAP_OUTCOMES.items()):
        print(f"GAP {case}: {what}")
