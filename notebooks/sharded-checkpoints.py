# %% [markdown]
# # Sharded Checkpoints: Many Processes, One Checkpoint
#
# Everything so far saved a model that lives in one process. A model trained by several
# processes (on several GPUs or machines) is stored in **shards**: each process holds only
# its part of every parameter. `torch.save` or a single Orbax call on one process then no
# longer does the job: that process holds a fraction of the model, and gathering all of it
# there first needs the whole model in one memory while every other process waits.
#
# Both ecosystems have their own engine for this:
#
# * **PyTorch: `torch.distributed.checkpoint` (DCP).** Every rank writes its own shards, in
#   parallel; a checkpoint saved by N ranks loads into M ranks (resharding while loading);
#   `async_save` lets training go on while the files are written.
# * **JAX: Orbax.** A sharded `jax.Array` is saved by the devices' processes in parallel;
#   restoring with a *target sharding* puts it onto another mesh; a `CheckpointManager`
#   saves every k steps in the background, keeps the last n, and commits each save
#   atomically.
#
# Here both run on the CPU: processes talking over the loopback address stand in for
# machines, and JAX is told to see four CPU devices. The programs are modules of the
# workbook's package, `d2l_utils/sharded/` (`torch_dcp.py`, `jax_orbax.py`), run with
# `python -m`; each part shows the functions it runs.

# %%
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()
import d2l_utils
import d2l_utils.sharded

SCRIPTS = Path(d2l_utils.sharded.__file__).parent  # torch_dcp.py, jax_orbax.py
SCRATCH = d2l_utils.scratch_dir("sharded", clean=True)  # every file below goes here


def show(script, *names):
    """Print these functions of d2l_utils/sharded/`script` as they are written in the file."""
    source = (SCRIPTS / script).read_text()
    for node in ast.parse(source).body:
        if getattr(node, "name", None) in names:
            print(ast.get_source_segment(source, node), end="\n\n")


# The processes talk over the loopback interface only: gloo (PyTorch's CPU backend) is told
# to use `lo`, and `torchrun --standalone` meets on this machine, at a port it picks itself.
# One thread each: two cores here.
ENV = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")


def run(command, shown):
    """Run `command` in notebooks/ and print `shown` (the same command, as typed in a shell);
    on failure, show what it printed."""
    print("$", shown)
    proc = subprocess.run(command, cwd=d2l_utils.scratch_dir(), env=ENV, capture_output=True,
                          text=True)
    if proc.returncode > 0:
        raise RuntimeError(f"exit status {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc


def torchrun(nproc, *args):
    """torchrun (python -m torch.distributed.run) with `nproc` processes on this machine."""
    options = ["--standalone", "--nproc-per-node", str(nproc)]
    script = ["-m", "d2l_utils.sharded.torch_dcp", *args]
    run([sys.executable, "-m", "torch.distributed.run", *options, *script],
        " ".join(["torchrun", *options, *script]))
    print("finished")


# %% [markdown]
# ## PyTorch: every rank saves its own shards
#
# The model is the workbook's MLP (20 → 64 → 32 → 10), built as a plain `nn.Sequential`.
# FSDP2's `fully_shard` shards it: each parameter becomes a `DTensor`, a tensor that knows
# it is split along dim 0 over the ranks of a device mesh, and each rank keeps only its block
# of rows. The training loop does not change: FSDP gathers a layer's full weights for its
# forward and backward pass, and hands each rank the gradient of its own rows, averaged
# over the ranks. `model.state_dict()` then holds DTensors, and `dcp.save` has each rank
# write the rows it holds.

# %%
show("torch_dcp.py", "shard", "train")

# %% [markdown]
# `torchrun` starts the processes ("ranks") and gives each its rank, the number of ranks and
# where to meet (`MASTER_ADDR`, `MASTER_PORT`: with `--standalone`, a free port on this
# machine, chosen when it starts); the script then joins the process group with
# the `gloo` backend, which runs on CPUs. Two ranks train on half of the batch each:

# %%
torchrun(2, "train", "sharded/dcp")

# %% [markdown]
# ### What was written, and by whom
#
# A DCP checkpoint is a folder. Each rank writes its shards to files of its own,
# `__<rank>_<n>.distcp`; rank 0, the coordinator, writes `.metadata` last: every tensor's
# full shape, and which file holds which block of it, at which offset. It is written under
# a temporary name and renamed, so a folder without `.metadata` is a save that never
# finished. `FileSystemReader` reads it:

# %%
import torch  # noqa: E402
import torch.distributed.checkpoint as dcp  # noqa: E402
from torch.distributed.checkpoint.metadata import MetadataIndex  # noqa: E402

from d2l_utils.sharded import torch_dcp  # noqa: E402  (the functions shown above)

CKPT = SCRATCH / "dcp" / "checkpoint"
metadata = dcp.FileSystemReader(CKPT).read_metadata()
files = sorted(p.name for p in CKPT.iterdir())
print("files:", files)
print(f"\n{'tensor':<16}{'shape':<10}" + "".join(
    f"{f} (rank {f[2:].split('_')[0]})".ljust(26) for f in files if f.endswith(".distcp")))
for name, tensor in metadata.state_dict_metadata.items():
    blocks = {}
    for chunk in tensor.chunks:
        where = metadata.storage_data[MetadataIndex(name, chunk.offsets)]
        start = chunk.offsets[0]
        blocks[where.relative_path] = f"rows {start}-{start + chunk.sizes[0] - 1}"
    print(f"{name:<16}{str(list(tensor.size)):<10}" + "".join(
        blocks.get(f, "-").ljust(26) for f in files if f.endswith(".distcp")))

# %% [markdown]
# `.metadata` is a pickle, which `FileSystemReader` reads with `pickle.load`: as the
# portable-checkpoints notebook showed, reading a pickle can run code put into it. Load DCP
# checkpoints only from storage you trust (the shard files themselves are read with
# `torch.load(weights_only=True)`); to hand a model to others, convert it (below).

# %% [markdown]
# ### Loading into one process
#
# The same checkpoint loads into a plain, unsharded model in a process with no process
# group at all: `dcp.load` fills the tensors of the state dict it is given, reading from
# each file the blocks that overlap them (here: all of them). `load_into` first checks what
# `.metadata` promises against the files (below, under *Bad input*, why), and turns DCP's
# per-rank failures into one error naming the checkpoint.

# %%
show("torch_dcp.py", "load_into")

# %% [markdown]
# The model is built with another seed, so its outputs differ until the checkpoint is in;
# then they equal the two-rank model's on the same input (which the training script saved).

# %%
probe = torch_dcp.data()[2]  # the fixed input of every comparison below
trained = torch.load(SCRATCH / "dcp" / "outputs" / "2-ranks.pt")  # the 2-rank model's outputs
model = torch_dcp.mlp(seed=1)  # a plain nn.Sequential: not sharded, no process group
with torch.no_grad():
    print("before loading, outputs equal:", torch.allclose(model(probe), trained, atol=1e-6, rtol=0))
    torch_dcp.load_into(model, CKPT)
    one_process = model(probe)
equal_2_to_1 = torch.allclose(one_process, trained, atol=1e-6, rtol=0)
print("2 ranks -> 1 process, outputs equal (within 1e-6):", equal_2_to_1)

# %% [markdown]
# ### Loading into four processes: resharding
#
# Four ranks shard the same model four ways: 64 rows become four blocks of 16, and the last
# layer's 10 rows become 3, 3, 3 and 1. Each rank asks `dcp.load` for its rows, and DCP
# reads them from whichever files hold them: rank 1's rows 16-31 of the first weight are in
# rank 0's file, and rank 2's rows 32-47 in rank 1's.

# %%
show("torch_dcp.py", "load")

# %%
torchrun(4, "load", "sharded/dcp")
held = [json.loads((SCRATCH / "dcp" / "ranks" / f"4-ranks-rank{r}.json").read_text())
        for r in range(4)]
print(f"\n{'rank':<6}" + "".join(f"{name:<13}" for name in held[0]))
for rank, rows in enumerate(held):
    print(f"{rank:<6}" + "".join(f"rows {a}-{b - 1}".ljust(13) for a, b, _ in rows.values()))
four_ranks = torch.load(SCRATCH / "dcp" / "outputs" / "4-ranks.pt")
equal_2_to_4 = torch.allclose(four_ranks, trained, atol=1e-6, rtol=0)
print("\n2 ranks -> 4 ranks, outputs equal (within 1e-6):", equal_2_to_4)

# %% [markdown]
# ### One file to share: standard safetensors
#
# A folder of `.distcp` shards suits training jobs, not handing a model to someone else.
# **Changed since the book:** DCP also writes safetensors in Hugging Face's layout
# (`HuggingFaceStorageWriter`: public since PyTorch 2.8; `save_distributed=True` with
# `enable_consolidation=True` since 2.9). Each rank writes its rows into a safetensors file
# of its own; then rank 0 joins them into one file of full tensors, with the index that
# sharded Hugging Face checkpoints carry. The training script saved its parameters that way
# too, under the portable layout's names (`dense0.weight`, ...: see the portable-checkpoints
# notebook), so any safetensors reader, in any framework or language, reads the one file.
# Before 2.9 the way out was `format_utils.dcp_to_torch_save`, which writes a `torch.save`
# pickle: PyTorch only, and a pickle.

# %%
show("torch_dcp.py", "portable_names", "save_safetensors")

# %%
import warnings  # noqa: E402

from safetensors import safe_open  # noqa: E402

from d2l_utils import torch as torchu  # noqa: E402
from d2l_utils.checkpoint import UncheckedCheckpointWarning  # noqa: E402

ONE_FILE = SCRATCH / "dcp" / "safetensors" / "model-00001-of-00001.safetensors"
for path in sorted(ONE_FILE.parent.rglob("*")):
    rel = path.relative_to(ONE_FILE.parent)
    print(f"{rel}/" if path.is_dir() else f"{rel} ({path.stat().st_size} bytes)")
with safe_open(ONE_FILE, "np") as f:
    print("\n" + ONE_FILE.name, {name: list(f.get_slice(name).get_shape()) for name in f.keys()})
print("index:", json.loads((ONE_FILE.parent / "model.safetensors.index.json").read_text()))


def load_one_file(framework, load, model):
    """d2l_utils' load of the one file; it carries no checksum (DCP writes none), which
    d2l_utils reports with a warning, shown here as one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UncheckedCheckpointWarning)
        loaded = load(model, ONE_FILE)
    print(f"{framework:<11} loaded; checksum verified:", "no, none in the file" if caught else "yes")
    return loaded


torch.manual_seed(3)
mlp = torchu.MulMLP(10, [64, 32], lr=0.1)  # the workbook's PyTorch MLP, not FSDP's
mlp(probe)  # its lazy layers take their sizes from a first batch
load_one_file("PyTorch", torchu.load_safetensors, mlp)
with torch.no_grad():
    print("PyTorch MulMLP, outputs equal to the 2-rank model's (within 1e-6):",
          torch.allclose(mlp(probe), trained, atol=1e-6, rtol=0))

# %% [markdown]
# ### Saving without stopping: `async_save`
#
# `dcp.save` returns when every file is written: the training loop waits for the disk (or,
# on a cluster, the network file system). `dcp.async_save` copies the state dict to memory
# ("staging"), returns a future, and writes from a background thread while training goes
# on; call `.result()` on the future before the next save. Its collectives run on a process
# group of their own, so that they never interleave with the training's.
#
# The training script measured both, on the MLP and on a wider one, as the time the loop
# was held up (median of three saves):

# %%
show("torch_dcp.py", "time_saves")

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock timings differ on every run and machine)
timings = json.loads((SCRATCH / "dcp" / "timings.json").read_text())
print(f"{'model':<26}{'MB':>6}{'save: blocked':>16}{'async_save: blocked':>22}{'until written':>16}")
for name, t in timings.items():
    print(f"{name:<26}{t['MB']:>6.2f}{t['save'] * 1e3:>13.1f} ms"
          f"{t['async_save'] * 1e3:>19.1f} ms{t['async_written'] * 1e3:>13.1f} ms")

# %% [markdown]
# `async_save` holds the loop up for a fraction of what `save` does; the write itself takes
# longer in the background, sharing the cores with training. With a few MB on a local disk,
# both are milliseconds; with gigabytes of parameters going to network storage, a
# synchronous save stops every rank for as long as the slowest write, and the difference
# is the point of `async_save`.

# %% [markdown]
# ## JAX and Orbax: sharded arrays, restored onto other meshes
#
# JAX sees one CPU device unless the flag `--xla_force_host_platform_device_count=4` is in
# `XLA_FLAGS` *before* JAX starts its CPU backend; later it has no effect. This kernel has
# not started JAX yet, so importing `d2l_utils.sharded.jax_orbax` (which sets the flag first
# thing) gives it four devices. In a kernel that already ran JAX, run it as a program instead:
# `python -m d2l_utils.sharded.jax_orbax reshard OUT` does what the next cells do.

# %%
from d2l_utils.sharded import jax_orbax  # noqa: E402  (sets XLA_FLAGS, then imports JAX)
import jax  # noqa: E402

print("devices:", jax.devices())

# %% [markdown]
# The parameters are the same MLP's, as the pytree Flax's `MulMLP` would hold. Each array
# gets a `NamedSharding` over a one-axis mesh `"x"`: its first axis split over the devices
# where it divides evenly, else a full copy on each. Orbax's `StandardCheckpointer` saves the
# sharded arrays (every device's piece written in parallel) and restores them onto whatever
# sharding the *target* says: a `jax.ShapeDtypeStruct` with a shape, a dtype and a sharding
# for every array.

# %%
show("jax_orbax.py", "shardings", "abstract", "restore", "reshard")

# %%
jax_orbax.reshard(SCRATCH / "orbax")

# %% [markdown]
# Trained on 4 devices, restored onto 2 and onto 1, with the same parameters and outputs
# (within `1e-6`: a matrix product whose inner axis is split over devices sums its parts in
# another order). The checkpoint is a folder: Orbax's metadata, and the arrays' bytes in a
# small key-value database (OCDBT, through TensorStore), whose data files have random names:

# %%
for path in sorted((SCRATCH / "orbax" / "params").rglob("*")):
    rel = path.relative_to(SCRATCH / "orbax" / "params")
    if path.name == "d":
        print(f"{rel}/  (data files with random names)")
    elif path.parent.name != "d":
        print(f"{rel}/" if path.is_dir() else rel)

# %% [markdown]
# ## DCP's one file in the other three frameworks
#
# Back to the safetensors file that the two PyTorch ranks wrote together: the same
# `d2l_utils` load puts it into Keras's and Flax's MLP (they store each weight transposed,
# which the load takes care of) and, in MXNet's own environment (`d2l-io-mxnet`, another
# process: see the portable-checkpoints notebook), into MXNet's. Each gives the outputs the
# two-rank PyTorch model gave.

# %%
import numpy as np  # noqa: E402

from d2l_utils import jax as jaxu  # noqa: E402
from d2l_utils import tensorflow as tfu  # noqa: E402
from d2l_utils.kernel import python  # noqa: E402

x, expected = probe.numpy(), trained.numpy()
keras_mlp = tfu.MulMLP(10, [64, 32], lr=0.1)
keras_mlp(x)  # builds its layers
load_one_file("TensorFlow", tfu.load_safetensors, keras_mlp)
outputs = {"TensorFlow": keras_mlp(x).numpy()}

flax_mlp = jaxu.MulMLP(10, (64, 32), 0.1)
params = load_one_file("JAX", jaxu.load_safetensors,
                       flax_mlp.init(jax.random.key(3), x))  # returns the loaded tree
outputs["JAX"] = np.asarray(flax_mlp.apply(params, x))

job_folder = SCRATCH / "dcp" / "mxnet"
job_folder.mkdir(exist_ok=True)
np.savez(job_folder / "data.npz", X=x, y=np.zeros(len(x), np.int64))  # not trained here
np.save(job_folder / "x.npy", x)
(job_folder / "job.json").write_text(json.dumps({
    "data": "data.npz", "x": "x.npy", "hidden": [64, 32], "steps": 0, "lr": 0.1,
    "models": [{"seed": 3, "load": str(ONE_FILE), "out": "out.npy"}]}))
subprocess.run([python("d2l-io-mxnet"), "-m", "d2l_utils.portable_mxnet", "job.json"],
               cwd=job_folder, check=True)
print(f"{'MXNet':<11} loaded; checksum verified:", "no, none in the file" if json.loads(
    (job_folder / "results.json").read_text())[0]["warned"] else "yes")
outputs["MXNet"] = np.load(job_folder / "out.npy")
for framework, got in outputs.items():
    print(f"{framework:<11} outputs equal to the 2-rank PyTorch model's (within 1e-5):",
          np.allclose(got, expected, atol=1e-5, rtol=0))

# %% [markdown]
# ## Checkpoints every k steps, and a crash in the middle of one
#
# A `CheckpointManager` decides when to save (`FixedIntervalPolicy(k)`), which saves to keep
# (`LatestN(n)`), and saves asynchronously: `save` returns once the arrays are copied off the
# devices, and a background thread writes them. Each save is written to
# `<step>.orbax-checkpoint-tmp` and renamed to `<step>` when complete; the rename is atomic,
# so a step folder either is a finished checkpoint or is not there.

# %%
show("jax_orbax.py", "manager", "train")

# %% [markdown]
# The script trains for 12 steps, saving every 3 and keeping 2; right after the save of
# step 9 has started, it kills itself with `SIGKILL` (no clean-up code of any kind runs, as
# when a machine loses power or a job is preempted):

# %%
proc = run([sys.executable, "-m", "d2l_utils.sharded.jax_orbax", "train", "sharded/run",
            "--steps", "12", "--every", "3", "--keep", "2", "--die-after-save", "9"],
           "python -m d2l_utils.sharded.jax_orbax train sharded/run --steps 12 --every 3 --keep 2 "
           "--die-after-save 9")
print(proc.stdout, end="")
print("killed by SIGKILL:", proc.returncode == -9)

# %% [markdown]
# Restarting: a new manager deletes the unfinished step 9, finds steps 3 and 6, and
# restores 6, which holds exactly the parameters of six steps of training (computed again
# from the start to compare); training goes on from there.

# %%
show("jax_orbax.py", "resume")
jax_orbax.resume(SCRATCH / "run", steps=12, every=3, keep=2)

# %% [markdown]
# Killing right after a save has started is one moment of many. `tests/test_sharded_checkpoints.py`
# kills the training at random moments while saves are in flight, in several trials, and
# checks each time that the newest finished checkpoint restores, to the parameters of its
# step, and that the kill did land in the middle of a save.

# %% [markdown]
# ## Beyond one machine
#
# The scripts above run unchanged on several machines; what changes is how the processes
# find each other, and where the files go.
#
# **PyTorch.** On each machine, one `torchrun` with the same rendezvous point (any
# machine's address and a free port) and the same job id; ranks are numbered across
# machines:
#
# ```bash
# torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \
#          --rdzv-endpoint node0.example.org:29500 --rdzv-id job42 torch_dcp.py train OUT
# ```
#
# **JAX.** Each machine runs one process that calls, before anything else in JAX,
# `jax.distributed.initialize(coordinator_address="node0.example.org:1234",
# num_processes=2, process_id=i)` (on clusters such as SLURM or Cloud TPU the arguments are
# found by themselves). `jax.devices()` then lists every machine's devices,
# `jax.local_devices()` this machine's; a mesh spans all of them, and every process calls
# the same Orbax save and restore: each writes and reads the pieces its devices hold, and
# the primary process writes the metadata and commits the save after a barrier.
#
# **Storage.** Every rank writes its own files into the checkpoint folder, and loading with
# another layout (resharding) reads blocks from other ranks' files: `OUT` must be one
# storage that every machine sees at the same path (a shared file system, or an object
# store through DCP's `FsspecWriter`/`FsspecReader` or Orbax's `gs://` paths). On disks
# local to each machine, each holds only its own ranks' files: `.metadata` (and Orbax's
# commit) still describe the whole checkpoint, but a load needs files from other machines,
# so they must be copied together first.
#
# Here, "several machines" is tested only as several processes over the loopback address:
# the `torchrun` runs above. What networks add (firewalls, interface names, clocks, slow
# storage) is not.

# %% [markdown]
# ## Bad input
#
# A checkpoint split over files can be damaged file by file: one rank's file lost or cut
# short by a full disk, or a checkpoint loaded into a model of another shape. DCP's own
# errors for these are long per-rank tracebacks, and a cut-short file fails deep inside
# `torch.load` without naming the file. Its `.metadata` says which file holds which block,
# at which offset and how long, so `verify` (in `load_into`) checks every file against it
# before reading anything. Each block is a `torch.save` record, a zip archive that carries a
# CRC-32 of every part, which `torch.load` never checks: `verify` does, so a flipped byte is
# an error too, not a silently different model.

# %%
show("torch_dcp.py", "verify")

# %%
from d2l_utils.checkpoint import CheckpointError  # noqa: E402

missing = SCRATCH / "bad" / "missing"
truncated = SCRATCH / "bad" / "truncated"
for damaged in (missing, truncated):
    shutil.copytree(CKPT, damaged)
(missing / "__1_0.distcp").unlink()
cut = truncated / "__1_0.distcp"
cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])

wider = torch_dcp.mlp((20, 128, 32, 10))  # another shape: 128 hidden units, not 64
before = {k: v.clone() for k, v in wider.state_dict().items()}
for attempt, model, checkpoint in [("a rank's file missing", torch_dcp.mlp(), missing),
                                   ("a rank's file truncated", torch_dcp.mlp(), truncated),
                                   ("another shape", wider, CKPT)]:
    try:
        torch_dcp.load_into(model, checkpoint)
    except CheckpointError as err:
        print(f"{attempt}:\n  {err.path.relative_to(SCRATCH)}: {err.problem}")
print("the wider model is unchanged:",
      all(torch.equal(before[k], v) for k, v in wider.state_dict().items()))

# %% [markdown]
# Orbax's restore goes through the same kind of check in `jax_orbax.restore_checked`: the
# checkpoint's tree of shapes and dtypes (its metadata) against the target's, before any
# array is read, and the first line of TensorStore's error, which names the array and the
# chunk, for a damaged file (`tests/test_sharded_checkpoints.py` tries both). A model of
# another shape:

# %%
wider = jax_orbax.abstract(jax_orbax.init((20, 128, 32, 10)))  # 128 hidden units, not 64
try:
    jax_orbax.restore(SCRATCH / "orbax" / "params", wider)
except CheckpointError as err:
    print(f"{err.path.relative_to(SCRATCH)}: {err.problem}")

# %% [markdown]
# ## Summary
#
# * With DCP every rank writes its own shards and rank 0 writes `.metadata`, last: a
#   checkpoint saved by 2 ranks loaded into 1 process and into 4 ranks with outputs equal
#   to the 2-rank model's, and as one standard safetensors file (`HuggingFaceStorageWriter`)
#   that PyTorch, TensorFlow, JAX and MXNet all load.
# * `async_save` holds training up only while the state is copied to memory; the write
#   goes on in the background.
# * Orbax saves sharded `jax.Array`s and restores them onto any mesh the target shardings
#   describe: trained on 4 devices, restored onto 2 and onto 1 with equal parameters and
#   outputs.
# * A `CheckpointManager` saves every k steps in the background and keeps the last n; a save
#   becomes a checkpoint only by an atomic rename, so a process killed in the middle of one
#   leaves the previous checkpoint restorable.
# * Check a checkpoint against its own metadata and against the model before reading it:
#   every problem is then one error naming the file or the array.
#
# **Measured** when this notebook was written (Python 3.13, PyTorch 2.15, JAX 0.12.0.1,
# Orbax 0.12.8, on a 2-core machine busy with other work; three runs):
#
# * 2 ranks → 1 process and 2 ranks → 4 ranks: outputs equal to the 2-rank model's (within
#   `1e-6`, and 2 → 4 in fact bitwise); the one safetensors file gave the same outputs in
#   all four frameworks (within `1e-5`).
# * JAX, 4 devices → 2 → 1: parameters bitwise equal, outputs equal within `1e-6`.
# * `async_save` held the loop up for 2 to 6 ms, `save` for 9 to 29 ms (both model sizes);
#   in the background the async write took 24 to 86 ms.
# * The kill test (`tests/test_sharded_checkpoints.py`): 3 training runs killed at random
#   moments, at once, on every run of the test; all of them restorable.
# * The notebook runs in 29 to 33 s, 35 to 39 s with its kernel's start
#   (`time make execute SOURCES=notebooks/sharded-checkpoints.py`). This run:

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock time differs on every run and machine)
print(f"this notebook ran in {time.perf_counter() - STARTED:.0f} s (after its kernel started)")
