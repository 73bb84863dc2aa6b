"""The workbook's MLP sharded over processes with FSDP2, saved and loaded with
torch.distributed.checkpoint (DCP). Run by notebooks/sharded-checkpoints.ipynb:

    torchrun --nproc-per-node 2 -m d2l_utils.sharded.torch_dcp train OUT   # train sharded, save, time saves
    torchrun --nproc-per-node 4 -m d2l_utils.sharded.torch_dcp load OUT    # load the checkpoint into 4 ranks
    python -m d2l_utils.sharded.torch_dcp load OUT                         # ... or into one process

OUT is a folder below the scratch folder (d2l_utils.scratch_dir(), $D2L_SCRATCH): the
checkpoint goes to OUT/checkpoint, the same parameters as one standard safetensors file to
OUT/safetensors/ (save_safetensors), each run's outputs on a fixed input to OUT/outputs/, what
each rank held to OUT/ranks/, and the save timings to OUT/timings.json. Nothing is printed:
the ranks' outputs would interleave.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
import statistics
import sys
import time
import warnings
import zipfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import d2l_utils
from d2l_utils.checkpoint import CheckpointError
from d2l_utils.sharded import first_line, message, output_folder

SIZES = (20, 64, 32, 10)  # the workbook's MLP: 20 -> 64 -> 32 -> 10
STEPS, LR, BATCH = 5, 0.1, 256


def mlp(sizes=SIZES, seed=0) -> nn.Sequential:
    """Linear and ReLU layers; the parameters are named 0.weight, 0.bias, 2.weight, ..."""
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def data():
    """The training batch, and the fixed input on which every run's outputs are compared."""
    X, y = d2l_utils.make_classification(n=BATCH, num_inputs=SIZES[0], num_classes=SIZES[-1])
    return torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(X[:8])


def shard(model: nn.Module) -> nn.Module:
    """FSDP2: each Linear, then the whole model, sharded over all ranks. Every parameter
    becomes a DTensor: dim 0 is split into one block of rows per rank (torch.chunk's
    split: 10 rows over 4 ranks are 3, 3, 3 and 1), and each rank stores only its block."""
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def rows_held(model: nn.Module) -> dict:
    """For each parameter, the rows [start, stop) of the full tensor this rank holds."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    held = {}
    for name, p in model.state_dict().items():
        n = p.to_local().shape[0] if hasattr(p, "to_local") else p.shape[0]
        start = min(rank * -(-p.shape[0] // world), p.shape[0])  # torch.chunk's blocks
        held[name] = [start, start + n, p.shape[0]]
    return held


def record(out: Path, run: str, model: nn.Module) -> None:
    """Rank 0 writes the model's outputs on the fixed input; every rank, what it holds."""
    with torch.no_grad():
        output = model(data()[2])  # every rank computes the full output
    rank = dist.get_rank() if dist.is_initialized() else 0
    (out / "ranks").mkdir(exist_ok=True)
    (out / "ranks" / f"{run}-rank{rank}.json").write_text(json.dumps(rows_held(model)))
    if rank == 0:
        (out / "outputs").mkdir(exist_ok=True)
        torch.save(output, out / "outputs" / f"{run}.pt")


def train(out: Path) -> None:
    """Data parallel and sharded: each rank trains on its half of the batch (FSDP averages
    the gradients over the ranks), then every rank saves its shards with one dcp.save."""
    rank, world = dist.get_rank(), dist.get_world_size()
    model = shard(mlp())
    X, y, _ = data()
    mine = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X[mine]), y[mine]).backward()
        opt.step()
    dcp.save({"model": model.state_dict()}, checkpoint_id=out / "checkpoint")
    save_safetensors(model, out / "safetensors")
    record(out, f"{world}-ranks", model)
    time_saves(out, X[mine], y[mine])


def portable_names(state: dict) -> dict:
    """nn.Sequential's names (0.weight, 0.bias, 2.weight, ...: ReLUs count too) to the
    portable layout's, which every framework's d2l_utils loads (d2l_utils/portable.py):
    dense0.weight, dense0.bias, dense1.weight, ..., in forward order."""
    linears = sorted({int(name.split(".")[0]) for name in state})
    return {name: f"dense{linears.index(int(name.split('.')[0]))}.{name.split('.')[1]}"
            for name in state}


def save_safetensors(model: nn.Module, folder: Path) -> Path:
    """Every rank writes its rows into a safetensors file of its own (FOLDER/sharded/), and
    rank 0 then joins them into one standard file of full tensors, with the layout's names:
    FOLDER/model-00001-of-00001.safetensors, with model.safetensors.index.json beside it
    (the Hugging Face layout). Returns that file's path."""
    state = model.state_dict()
    names = portable_names(state)
    writer = dcp.HuggingFaceStorageWriter(str(folder), save_distributed=True,
                                          enable_consolidation=True)
    dcp.save({names[name]: tensor for name, tensor in state.items()}, storage_writer=writer)
    return folder / "model-00001-of-00001.safetensors"


def _plain_file(checkpoint: Path, name: str) -> Path:
    """checkpoint/name, which exists, and must be a regular file right in the folder (no link,
    no FIFO)."""
    path = checkpoint / name
    if path.is_symlink() or not stat.S_ISREG(path.lstat().st_mode):
        raise CheckpointError(path, "not a regular file")
    return path


def verify(checkpoint: Path) -> dcp.Metadata:
    """Check a DCP checkpoint before reading it: its .metadata (written last, by rank 0)
    says which file holds each shard, at which offset and how long. Every such file must be
    a regular file of this folder, long enough, its shards may not overlap, and each shard
    (one torch.save record: a zip archive with CRC-32s) must pass its own checksums.
    CheckpointError names the file and what it should hold. (.metadata is a pickle, read
    with pickle: a checkpoint from someone you do not trust can run code when loaded.)"""
    checkpoint = Path(checkpoint)
    meta = checkpoint / ".metadata"
    if not meta.exists() and not meta.is_symlink():
        raise CheckpointError(checkpoint, "no .metadata: not a finished DCP checkpoint")
    _plain_file(checkpoint, ".metadata")
    try:
        metadata = dcp.FileSystemReader(checkpoint).read_metadata()
    except Exception as err:  # a damaged pickle raises anything
        raise CheckpointError(meta, f"unreadable ({first_line(err)})") from None
    if not isinstance(metadata, dcp.Metadata) or not isinstance(metadata.storage_data, dict):
        raise CheckpointError(meta, f"holds a {type(metadata).__name__}, not DCP's Metadata")
    shards: dict[str, list[tuple]] = {}  # file -> (start, end, name, is a tensor) of its shards
    for index, where in metadata.storage_data.items():
        name = f"{index.fqn} from row {index.offset[0]}" if index.offset else index.fqn
        file, start, length = where.relative_path, where.offset, where.length
        if (not isinstance(file, str) or not file.endswith(".distcp") or "/" in file
                or file.startswith(".") or not isinstance(start, int) or not isinstance(length, int)
                or start < 0 or length <= 0):
            raise CheckpointError(meta, f"the entry of {name} is invalid ({file!r}, bytes "
                                        f"{start!r} + {length!r})")
        # Tensors are torch.save records (zip archives); other objects are raw bytes.
        is_tensor = isinstance(metadata.state_dict_metadata.get(index.fqn), dcp.TensorStorageMetadata)
        shards.setdefault(file, []).append((start, start + length, name, is_tensor))
    for file, held in sorted(shards.items()):
        held.sort()
        if not (checkpoint / file).exists() and not (checkpoint / file).is_symlink():
            raise CheckpointError(checkpoint / file, f"missing: it holds {len(held)} shards, the "
                                                     f"first {held[0][2]}")
        path = _plain_file(checkpoint, file)
        size = path.stat().st_size
        if size < held[-1][1]:
            raise CheckpointError(path, f"truncated: {size} bytes, but the shard of "
                                        f"{held[-1][2]} ends at byte {held[-1][1]}")
        for (_, end, name, _), (start, _, other, _) in zip(held, held[1:]):
            if start < end:
                raise CheckpointError(path, f"the shards of {name} and {other} overlap")
        with open(path, "rb") as f:
            for start, end, name, is_tensor in held:
                if not is_tensor:
                    continue
                f.seek(start)
                chunk = f.read(end - start)
                try:
                    # The record fills its bytes exactly: a zip from its first byte (local
                    # header) to its last (the end record, no comment); zipfile alone would
                    # accept junk around it.
                    if not chunk.startswith(b"PK\x03\x04") or chunk[-22:-18] != b"PK\x05\x06":
                        raise zipfile.BadZipFile("not one zip archive from its first byte to its last")
                    with zipfile.ZipFile(io.BytesIO(chunk)) as record:
                        bad = record.testzip()
                except Exception as err:  # BadZipFile, and what a damaged header raises
                    raise CheckpointError(path, f"the shard of {name} is damaged "
                                                f"({first_line(err)})") from None
                if bad is not None:
                    raise CheckpointError(path, f"the shard of {name} is damaged (checksum of "
                                                f"{bad} does not match)")
    return metadata


def load_into(model: nn.Module, checkpoint: Path) -> nn.Module:
    """Load a DCP checkpoint into `model`, sharded over this job's ranks or not sharded at
    all: each rank reads only the pieces of the files that overlap what it holds. Every
    problem is one CheckpointError naming the checkpoint and, for each rank, the cause; a
    tensor saved with another dtype than the model's is one too (DCP would cast it)."""
    metadata = verify(checkpoint)
    state = {"model": model.state_dict()}
    for name, tensor in state["model"].items():
        saved = metadata.state_dict_metadata.get(f"model.{name}")
        dtype = getattr(getattr(saved, "properties", None), "dtype", None)
        if dtype is not None and dtype != tensor.dtype:
            raise CheckpointError(checkpoint, f"model.{name}: saved as {dtype}, the model "
                                              f"holds {tensor.dtype}")
    try:
        with warnings.catch_warnings():  # without a process group DCP warns that it loads
            warnings.filterwarnings("ignore", "torch.distributed is disabled")  # in 1 process
            dcp.load(state, checkpoint_id=checkpoint)
    except dcp.CheckpointException as err:  # one (exception, traceback) per failed rank
        causes = "; ".join(f"rank {rank}: {message(exc) or type(exc).__name__}"
                           for rank, (exc, _) in sorted(err.failures.items()))
        raise CheckpointError(checkpoint, causes) from None
    except Exception as err:  # anything else DCP lets through
        raise CheckpointError(checkpoint, first_line(err)) from None
    model.load_state_dict(state["model"])
    return model


def load(out: Path) -> None:
    """Load OUT/checkpoint into a differently initialised model sharded over this job's
    ranks (under torchrun), or into a plain model in one process."""
    model = mlp(seed=1)
    if dist.is_initialized():
        model = shard(model)
    load_into(model, out / "checkpoint")
    record(out, f"{dist.get_world_size()}-ranks" if dist.is_initialized() else "1-process", model)


def time_saves(out: Path, X, y, repeats: int = 3) -> None:
    """How long a training loop is held up by a save, on two sizes of model: dcp.save
    returns when every file is written; dcp.async_save returns once the state is copied
    to memory (staged), and writes from a background thread while training goes on. The
    async saves use a process group of their own, so that their collectives never
    interleave with FSDP's. Medians of `repeats` saves, in seconds, to OUT/timings.json."""
    group = dist.new_group(backend="gloo")
    timings = {}
    for sizes in (SIZES, (20, 1024, 1024, 10)):
        model = shard(mlp(sizes))
        opt = torch.optim.SGD(model.parameters(), lr=LR)

        def step():
            opt.zero_grad()
            nn.functional.cross_entropy(model(X), y).backward()
            opt.step()

        where = out / "timing" / "-".join(map(str, sizes))
        sync, blocked, written = [], [], []
        for i in range(repeats):
            step()
            t0 = time.perf_counter()
            dcp.save({"model": model.state_dict()}, checkpoint_id=where / f"sync-{i}")
            sync.append(time.perf_counter() - t0)
        for i in range(repeats):
            step()
            t0 = time.perf_counter()
            pending = dcp.async_save({"model": model.state_dict()}, process_group=group,
                                     checkpoint_id=where / f"async-{i}")
            blocked.append(time.perf_counter() - t0)
            step()  # training goes on while the checkpoint is written
            pending.result()  # at most one save in flight: wait before the next one
            written.append(time.perf_counter() - t0)
        megabytes = sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 1e6
        timings[" -> ".join(map(str, sizes))] = {
            "MB": megabytes, "save": statistics.median(sync),
            "async_save": statistics.median(blocked), "async_written": statistics.median(written)}
    if dist.get_rank() == 0:
        (out / "timings.json").write_text(json.dumps(timings, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train", "load"])
    parser.add_argument("out", help="output folder, relative to the scratch folder")
    args = parser.parse_args(argv)
    out = output_folder(args.out)
    if "RANK" in os.environ:  # started by torchrun, which set RANK, WORLD_SIZE, MASTER_ADDR...
        dist.init_process_group("gloo")
    elif args.command == "train":
        raise SystemExit("train needs several processes: torchrun --nproc-per-node 2 ...")
    try:
        train(out) if args.command == "train" else load(out)
        if dist.is_initialized():
            # Every rank past its last collective before any tears the group down: a rank
            # that destroyed it while another still exchanged with it could abort in gloo's
            # threads ("terminate called without an active exception").
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
