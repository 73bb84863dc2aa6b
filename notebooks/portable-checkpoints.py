# %% [markdown]
# # Portable and Safe Checkpoints
#
# Each framework saves parameters in its own format: PyTorch pickles, Keras HDF5, MXNet its
# `.params`, Flax through Orbax. This notebook answers three questions those formats leave
# open:
#
# 1. **Moving weights between frameworks.** One neutral file, read by all four.
# 2. **Loading a file someone else made.** Which loaders run code hidden in the file, and which
#    refuse it.
# 3. **Not losing a checkpoint when training dies mid-save**, and getting a clear error, not a
#    silently wrong model, from a damaged or mismatched file.
#
# The neutral format is [safetensors](https://huggingface.co/docs/safetensors): a small JSON
# header (names, dtypes, shapes, byte offsets) and the raw bytes. There is no code in it, so
# loading it cannot run any. `d2l_utils.checkpoint` writes and reads it; each framework module
# of `d2l_utils` maps its models to it.

# %%
import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np

import d2l_utils
from d2l_utils import torch as torchu  # before TensorFlow and JAX (see the note below)
from d2l_utils import tensorflow as tfu
from d2l_utils import jax as jaxu
from d2l_utils.checkpoint import CheckpointError, load_tensors, save_tensors
from d2l_utils.kernel import python

import jax
import keras
import optax
import tensorflow as tf
import torch

os.chdir(d2l_utils.scratch_dir("portable", clean=True))
X_np, y_np = d2l_utils.make_classification(n=256, num_inputs=20, num_classes=10, seed=0)

# %% [markdown]
# Three frameworks in one process is unusual, and the import order matters: each framework
# ships its own copies of native libraries (LLVM, protobuf, OpenMP), and importing PyTorch
# first, then TensorFlow, then JAX works on the versions pinned here.
#
# **MXNet runs in another process.** MXNet 1.9.1 needs NumPy 1.x, while this notebook's
# environment (`d2l-io`) has NumPy 2; so MXNet has an environment of its own, `d2l-io-mxnet`
# (see the README). Its side of every experiment below is `d2l_utils/portable_mxnet.py`, run
# with that environment's Python: the same MLP, the same training, the same file functions,
# handed its inputs and returning its outputs through files. That makes the portability claim
# stronger, not weaker: the file crosses a process boundary and a NumPy major version, as it
# would between two machines.
#
# ## One MLP, four frameworks
#
# The same architecture everywhere: 20 inputs, hidden layers of 64 and 32 units with ReLU,
# 10 outputs (`MulMLP` from each framework's `d2l_utils` module). The frameworks disagree on
# one thing that matters here: a dense layer's weight matrix is stored as **(out, in)** by
# PyTorch and MXNet and as **(in, out)** by Keras and Flax. The file uses one layout, PyTorch's:
# `dense{i}.weight` (out, in) and `dense{i}.bias` (out,), layer by layer in forward order;
# Keras and Flax transpose on the way in and out.
#
# Below, for each framework: build a model (seeded), train it for a few full-batch SGD steps,
# compute outputs, save and load.

# %%
HIDDEN, STEPS, LR = [64, 32], 5, 0.1


def build(fw, seed):
    if fw == "pytorch":
        torch.manual_seed(seed)
        m = torchu.MulMLP(10, HIDDEN, LR)
        m(torch.zeros(1, 20))
        return m
    if fw == "tensorflow":
        keras.utils.set_random_seed(seed)
        m = tfu.MulMLP(10, HIDDEN, LR)
        m(np.zeros((1, 20), np.float32))
        return m
    module = jaxu.MulMLP(10, tuple(HIDDEN), LR)
    return {"module": module, "params": module.init(jax.random.key(seed), X_np[:1])}


def forward(fw, m, x):
    if fw == "pytorch":
        return m(torch.from_numpy(x)).detach().numpy()
    if fw == "tensorflow":
        return m(x).numpy()
    return np.asarray(m["module"].apply(m["params"], x))


def train(fw, m):
    X, y = X_np, y_np
    if fw == "pytorch":
        opt = torch.optim.SGD(m.parameters(), lr=LR)
        for _ in range(STEPS):
            opt.zero_grad()
            m.loss(m(torch.from_numpy(X)), torch.from_numpy(y)).backward()
            opt.step()
    elif fw == "tensorflow":
        opt = keras.optimizers.SGD(LR)
        for _ in range(STEPS):
            with tf.GradientTape() as tape:
                loss = m.loss(m(X), y)
            opt.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
    else:
        tx = optax.sgd(LR)
        state = tx.init(m["params"])
        loss = lambda p: m["module"].loss(m["module"].apply(p, X), y)
        for _ in range(STEPS):
            updates, state = tx.update(jax.grad(loss)(m["params"]), state)
            m["params"] = optax.apply_updates(m["params"], updates)
    return m


MODULES = {"pytorch": torchu, "tensorflow": tfu, "jax": jaxu}


def save(fw, m, path):
    return MODULES[fw].save_safetensors(m["params"] if fw == "jax" else m, path)


def load(fw, m, path):
    if fw == "jax":
        m["params"] = jaxu.load_safetensors(m["params"], path)
    else:
        MODULES[fw].load_safetensors(m, path)
    return m


FRAMEWORKS = d2l_utils.FRAMEWORKS  # ("mxnet", "pytorch", "tensorflow", "jax")
MXNET_PYTHON = python("d2l-io-mxnet")  # the d2l-io-mxnet kernel's interpreter


def in_mxnet(x, *models):
    """Run MXNet's side (d2l_utils/portable_mxnet.py) in the MXNet environment: build, train,
    save, load each model as `models` say; return their outputs on x and what each load warned."""
    np.savez("data.npz", X=X_np, y=y_np)
    np.save("x.npy", x)
    job = {"data": "data.npz", "x": "x.npy", "hidden": HIDDEN, "steps": STEPS, "lr": LR,
           "models": [dict(m, out=f"mxnet-out{i}.npy") for i, m in enumerate(models)]}
    Path("job.json").write_text(json.dumps(job))
    subprocess.run([MXNET_PYTHON, "-m", "d2l_utils.portable_mxnet", "job.json"], check=True)
    warned = [r["warned"] for r in json.loads(Path("results.json").read_text())]
    return [np.load(f"mxnet-out{i}.npy") for i in range(len(models))], warned

# %% [markdown]
# Train in PyTorch, save, and look inside the file: names, shapes and dtypes, and a little
# metadata. Any safetensors reader (in any language) sees the same.

# %%
trained = train("pytorch", build("pytorch", seed=1))
save("pytorch", trained, "mlp-from-pytorch.safetensors")
tensors, meta = load_tensors("mlp-from-pytorch.safetensors")
meta, {name: (t.shape, str(t.dtype)) for name, t in tensors.items()}

# %% [markdown]
# ## Carry it everywhere, from everywhere
#
# For each framework as the source: train there, save, then load the file into a freshly
# built (differently seeded) model of each framework and compare the outputs on the same
# input. The tolerance is `atol = 1e-5` on logits of order 1: float32 matrix products may sum
# in a different order in each framework, so the last bits can differ; anything wrong with
# names or layouts would be off by far more than that.

# %%
x = X_np[:16]
TOL = 1e-5
expected, before, got = {}, {}, {}
for src in FRAMEWORKS:  # train in each framework, save
    path = f"mlp-from-{src}.safetensors"
    if src == "mxnet":
        (expected[src],), _ = in_mxnet(x, {"seed": 1, "train": True, "save": path})
    else:
        model = train(src, build(src, seed=1))
        expected[src] = forward(src, model, x)
        save(src, model, path)
for dst in FRAMEWORKS:  # load every file into a fresh model of each framework
    if dst == "mxnet":
        loads = [{"seed": 2, "load": f"mlp-from-{src}.safetensors"} for src in FRAMEWORKS]
        (before[dst], *outs), _ = in_mxnet(x, {"seed": 2}, *loads)
        got.update({(src, dst): out for src, out in zip(FRAMEWORKS, outs)})
        continue
    before[dst] = forward(dst, build(dst, seed=2), x)
    for src in FRAMEWORKS:
        got[src, dst] = forward(dst, load(dst, build(dst, seed=2), f"mlp-from-{src}.safetensors"), x)
# The file gave the source's outputs, and the fresh model gave different ones before the load.
agree = {(src, dst): np.allclose(got[src, dst], expected[src], atol=TOL, rtol=0)
         and not np.allclose(before[dst], expected[src], atol=TOL)
         for src in FRAMEWORKS for dst in FRAMEWORKS}

print("from \\ into " + "".join(f"{d:>12}" for d in FRAMEWORKS))
for src in FRAMEWORKS:
    print(f"{src:<12}" + "".join(f"{str(agree[src, d]):>12}" for d in FRAMEWORKS))

# %%
assert all(agree.values()) and len(agree) == 16

# %% [markdown]
# Every row is a source framework, every column a target: sixteen transfers, all giving the
# source's outputs within `1e-5` (and each target model gave different outputs before the
# load, so the equality comes from the file).

# %% [markdown]
# ## Reusing part of a checkpoint
#
# Exercise 2 of the chapter reuses the first layers of a trained network in a new one. With
# one file per model, that means loading *some* tensors of a file. `load_tensors(path,
# names=[...])` reads only the tensors it names: the header says where each one lies, so the
# rest of the file is never read (and each tensor has its own checksum, so what is loaded is
# still verified). `mmap=True` maps the file instead of copying it: the arrays are views of
# the mapped file, and each one is still read once to verify its checksum (so it is not lazy,
# as `torch.load(mmap=True)` is). Either way, load time grows with what you load, not with the
# file (`benchmarks/checkpoint_formats.py` measures it).
#
# Every framework module's `load_safetensors(model, path, layers=k)` uses this to fill a
# model's first `k` dense layers from the file's first `k`. Below, the first two layers of the
# MLP trained in PyTorch go into a `ReusedMLP` of each framework. Its reused block is a
# 20 → 64 → 32 network (a `MulMLP(32, [64])`), followed by new layers. What those two layers
# compute is checked against NumPy, evaluated straight from the file.

# %%
source = "mlp-from-pytorch.safetensors"
first, _ = load_tensors(source, names=["dense0.weight", "dense0.bias", "dense1.weight", "dense1.bias"])
print("loaded:", sorted(first))
hidden = np.maximum(x @ first["dense0.weight"].T + first["dense0.bias"], 0)
reference = hidden @ first["dense1.weight"].T + first["dense1.bias"]


def reused_output(fw):
    """Build a ReusedMLP whose reused block is a MulMLP(32, [64]), load the file's first two
    layers into it, and return what the reused block computes on x."""
    if fw == "pytorch":
        torch.manual_seed(3)
        block = torchu.MulMLP(32, [64], LR)
        m = torchu.ReusedMLP(10, [16], LR, block)
        m(torch.zeros(1, 20))
        torchu.load_safetensors(m, source, layers=2)
        return block(torch.from_numpy(x)).detach().numpy()
    if fw == "tensorflow":
        keras.utils.set_random_seed(3)
        block = tfu.MulMLP(32, [64], LR)
        m = tfu.ReusedMLP(10, [16], LR, block)
        m(np.zeros((1, 20), np.float32))
        tfu.load_safetensors(m, source, layers=2)
        return block(x).numpy()
    if fw == "mxnet":
        (out,), _ = in_mxnet(x, {"seed": 3, "reused": True, "load": source, "layers": 2})
        return out
    block = jaxu.MulMLP(32, (64,), LR)
    m = jaxu.ReusedMLP(10, (16,), LR, block)
    params = jaxu.load_safetensors(m.init(jax.random.key(3), x[:1]), source, layers=2)
    return np.asarray(block.apply({"params": params["params"]["reused_layer"]}, x))


for fw in FRAMEWORKS:
    err = np.abs(reused_output(fw) - reference).max()
    print(f"{fw:<11} reused block vs NumPy from the file: max |difference| {err:.0e} (< {TOL}: {err < TOL})")

# %% [markdown]
# ## A file from elsewhere
#
# Most safetensors files are written by the `safetensors` library itself, from PyTorch,
# NumPy, Flax or TensorFlow: that is how model hubs publish weights. `d2l_utils` reads them
# like its own. Here the PyTorch model's layers are written with
# `safetensors.torch.save_file`, in the portable layout, and loaded into every framework.
# Such a file has no checksum (only `save_tensors` adds one), so the load says it was not
# verified, with an `UncheckedCheckpointWarning`.

# %%
import warnings

from safetensors.torch import save_file

linears = [m for m in trained.modules() if isinstance(m, torch.nn.Linear)]
save_file({f"dense{i}.{kind}": getattr(m, kind).detach() for i, m in enumerate(linears)
           for kind in ("weight", "bias")},
          "from-the-library.safetensors",
          metadata={"format": "d2l-io/mlp", "layers": str(len(linears))})

expected = forward("pytorch", trained, x)
for fw in FRAMEWORKS:
    if fw == "mxnet":
        (got,), (warned,) = in_mxnet(x, {"seed": 2, "load": "from-the-library.safetensors"})
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = forward(fw, load(fw, build(fw, seed=2), "from-the-library.safetensors"), x)
        warned = caught[0].category.__name__ if caught else None
    print(f"{fw:<11} outputs equal to PyTorch's: {np.allclose(got, expected, atol=TOL, rtol=0)},",
          "warned:", warned or "nothing")
print(caught[0].message)

# %% [markdown]
# Published weights are usually **bfloat16**, a 16-bit float with float32's range, which
# NumPy lacks. `d2l_utils` returns it (and the 8-bit float types) with the dtypes of
# `ml_dtypes`, the package JAX uses for them; `.astype(np.float32)` converts exactly. (The
# 0.1 below was rounded when PyTorch made it bfloat16, which keeps 8 bits of mantissa.)

# %%
save_file({"w": torch.tensor([[0.1, -2.5, 3e38]], dtype=torch.bfloat16)}, "bf16.safetensors")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", d2l_utils.checkpoint.UncheckedCheckpointWarning)
    w = load_tensors("bf16.safetensors")[0]["w"]
print("dtype:", w.dtype, "| as float32:", w.astype(np.float32))

# %% [markdown]
# ## Files that run code: shown and refused
#
# A pickle stores *instructions* to rebuild objects, and an instruction can be "call this
# function". `torch.save` and `np.save(..., allow_pickle=True)` write pickles. Below, an object
# whose unpickling calls `Path.touch` on a marker file: harmless, but it could as well have
# been any other function.

# %%
MARKER = Path("marker-code-ran")


class Payload:
    def __reduce__(self):  # what pickle stores: "call Path.touch(MARKER)"
        return (Path.touch, (MARKER.resolve(),))


torch.save({"dense0.weight": torch.zeros(2, 2), "extra": Payload()}, "evil.pt")
np.save("evil.npy", np.array([Payload()], dtype=object), allow_pickle=True)
print("marker exists before any load:", MARKER.exists())

# %% [markdown]
# `torch.load(..., weights_only=False)` unpickles everything: the code runs.

# %%
torch.load("evil.pt", weights_only=False)
assert MARKER.exists()
MARKER.unlink()

# %% [markdown]
# So does `np.load(..., allow_pickle=True)`:

# %%
np.load("evil.npy", allow_pickle=True)
assert MARKER.exists()
MARKER.unlink()

# %% [markdown]
# The safe defaults refuse: `torch.load` with `weights_only=True` (the default since PyTorch
# 2.6) allows only tensors and plain containers; `np.load` with `allow_pickle=False` (its
# default) loads only plain arrays; and a safetensors reader finds no header it could trust.

# %%
try:
    torch.load("evil.pt", weights_only=True)
except pickle.UnpicklingError as err:
    reason = next(line for line in str(err).splitlines() if "Unsupported global" in line)
    print("torch.load(weights_only=True): refused:", reason.split(". ")[0].strip())
try:
    np.load("evil.npy", allow_pickle=False)
except ValueError as err:
    print("np.load(allow_pickle=False): refused:", err)
try:
    load_tensors("evil.pt")
except CheckpointError as err:
    print("load_tensors:", err.problem)
assert not MARKER.exists()

# %% [markdown]
# ## Bad files get one clear error
#
# `d2l_utils.checkpoint.CheckpointError` is the one exception for every problem: it names the
# file and says what is wrong, and nothing is loaded partially. The header is checked by the
# safetensors library's own parser (written in Rust, fuzzed and audited) before anything else
# reads the file, so a crafted header (sizes that overflow, offsets outside the file,
# overlapping tensors, JSON nested 100,000 deep) is refused, not obeyed. `save_tensors` also
# stores a checksum (XXH3) of every tensor and of the metadata; it catches damage that would
# otherwise load as wrong numbers. Four damaged or mismatched files:

# %%
good = Path("mlp-from-pytorch.safetensors").read_bytes()
Path("truncated.safetensors").write_bytes(good[: len(good) // 2])
flipped = bytearray(good)
flipped[-100] ^= 0x01  # one bit of one weight
Path("flipped.safetensors").write_bytes(bytes(flipped))

torch.manual_seed(0)
wider = torchu.MulMLP(10, [128, 32], LR)
wider(torch.zeros(1, 20))
half = {k: v.astype(np.float16) for k, v in load_tensors("mlp-from-pytorch.safetensors")[0].items()}
save_tensors("half.safetensors", half, meta)

for name, attempt in [
    ("truncated.safetensors", lambda p: load("pytorch", build("pytorch", 0), p)),
    ("flipped.safetensors", lambda p: load("pytorch", build("pytorch", 0), p)),
    ("mlp-from-pytorch.safetensors", lambda p: torchu.load_safetensors(wider, p)),
    ("half.safetensors", lambda p: load("pytorch", build("pytorch", 0), p)),
]:
    try:
        attempt(name)
    except CheckpointError as err:
        print(f"{err.path.name}: {err.problem}\n")

# %% [markdown]
# The wider model was not changed by the failed load: every check runs before the first
# parameter is written.

# %%
before = {k: v.clone() for k, v in wider.state_dict().items()}
try:
    torchu.load_safetensors(wider, "mlp-from-pytorch.safetensors")
except CheckpointError:
    pass
print("wider model unchanged:", all(torch.equal(before[k], v) for k, v in wider.state_dict().items()))

# %% [markdown]
# ## Saves that survive a crash
#
# Writing a file in place is not atomic: a crash (or a full disk, or a killed job) in the
# middle leaves a file that is half new and half old, or just short, under the name you will
# load next. `save_tensors` never writes under the final name: it writes a temporary file in
# the same folder, flushes it and calls `fsync` (the bytes are on the disk, not only in the
# page cache), then renames it over the final name (a rename within one file system is
# atomic) and fsyncs the folder (so the rename itself is durable). At any moment the final
# name holds the complete old file or the complete new one.
#
# A killed save leaves its temporary file behind (the `.atomic.safetensors.….tmp` of a
# killed writer, as large as the checkpoint). The writer holds a lock on it while it writes,
# so the next save or load of that checkpoint knows which temporary files have no live
# writer any more and deletes them, as Orbax does with its unfinished checkpoints.
#
# `tests/test_checkpoint_crash.py` checks this the hard way: it kills a process that keeps
# saving over a checkpoint at random moments (60 times) and loads the file after each kill.
# The cost of the safety is measured in `benchmarks/checkpoint_formats.py`: the `fsync`,
# which is the price of durability, and little else.

# %%
Path(".atomic.safetensors.k1ll3d.tmp").write_bytes(b"what a killed save left")
save_tensors("atomic.safetensors", {"w": np.ones(3, np.float32)})
print("files:", sorted(p.name for p in Path().iterdir() if p.name.startswith((".atomic", "atomic"))))

# %% [markdown]
# ## Summary
#
# * safetensors holds named tensors and no code, in one layout every framework can map to:
#   the MLP moved between all four frameworks in every direction with outputs equal within
#   `1e-5`, and files written by the safetensors library load as well as our own.
# * Load only what you need: named tensors are read alone, or memory-mapped.
# * Pickle-based loaders run code from the file unless told not to: keep `weights_only=True`
#   and `allow_pickle=False`, and prefer formats that cannot carry code.
# * Check everything before loading anything, with one error type that names the file and
#   the problem; a checksum turns silent corruption into an error.
# * Save to a temporary file, fsync, rename: a crash then never costs more than the
#   checkpoint being written, and the next save cleans up what the crash left.
