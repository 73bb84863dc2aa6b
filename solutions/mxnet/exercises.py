# %% [markdown]
# # File I/O: Exercises (MXNet)
#
# The three exercises at the end of the chapter, each answered in words and shown with cells
# you can run. Cells marked *tests* check your work; run them after your own code.
# Everything is small enough to run on a laptop CPU in seconds, with data made in the notebook.
#
# MXNet 1.9.1 is the last release of a retired project; `d2l_utils.mxnet` restores the NumPy
# alias it needs (see the walkthrough), so import it before anything from MXNet.

# %%
import json
import os
import subprocess
import sys
import time

import numpy as onp

import d2l_utils
from d2l_utils import mxnet as d2l

mx, np, npx = d2l.mxnet, d2l.np, d2l.npx
from mxnet import autograd, gluon  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

npx.set_np()
os.chdir(d2l_utils.scratch_dir("mxnet", "exercises", clean=True))
X_np, y_np = d2l_utils.make_classification(n=512, num_inputs=20, num_classes=10, seed=0)
X, y = np.array(X_np), np.array(y_np)
X.shape, y.shape

# %% [markdown]
# The model for all three exercises is `d2l_utils.mxnet.MulMLP`: a `Dense(h,
# activation="relu")` per hidden width, then the output layer (Gluon's `Dense` flattens its
# input itself). The helpers below build a seeded model with a `gluon.Trainer` (SGD with
# momentum, which has state) and train it, shuffling with a NumPy generator we control.

# %%
HPARAMS = {"num_outputs": 10, "num_hiddens": [64, 32], "lr": 0.1}


def make_model(seed=0):
    mx.random.seed(seed)
    model = d2l.MulMLP(**HPARAMS)
    model(X[:1])  # deferred initialisation: shapes are known after the first batch
    trainer = gluon.Trainer(model.collect_params(), "sgd",
                            {"learning_rate": HPARAMS["lr"], "momentum": 0.9})
    return model, trainer


def train(model, trainer, rng, epochs, batch_size=64):
    for _ in range(epochs):
        order = rng.permutation(len(X_np))
        for i in range(0, len(X_np), batch_size):
            idx = np.array(order[i:i + batch_size])
            with autograd.record():
                loss = model.loss(model(X[idx]), y[idx])
            loss.backward()
            trainer.step(1)  # the loss is already a mean


def same_parameters(a, b):
    pa, pb = a.collect_params(), b.collect_params()
    return len(pa.keys()) == len(pb.keys()) and all(
        onp.array_equal(u.data().asnumpy(), v.data().asnumpy()) for u, v in zip(pa.values(), pb.values()))


# %% [markdown]
# ## Exercise 1
#
# Even if there is no need to deploy trained models to a different device, what are the
# practical benefits of storing model parameters?

# %% [markdown] nbgrader={"grade": true, "grade_id": "mxnet-ex1-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# **Resuming.** Training can stop at any time: a crash, a time limit, a laptop lid. A
# checkpoint written every epoch means you lose at most one epoch. To resume *exactly*, a
# checkpoint needs the parameters (`save_parameters`), the trainer's state with SGD's momentum
# (`trainer.save_states`), the state of the generator that shuffles the data, and the epoch.
# MXNet's own generator (`mx.random`) cannot be saved and restored mid-stream, so the shuffling
# uses a NumPy generator, whose state is a small dict we store as JSON (and the model has no
# dropout, which would draw from `mx.random`). With all four, the resumed run ends with
# bit-for-bit the same parameters as a run that never stopped (shown below).
#
# **Cost.** Loading takes milliseconds; recomputing means training again (measured below).
#
# **Reproducibility and comparison.** A stored model gives the same outputs tomorrow.
#
# **Versioning.** Parameter files per epoch keep a history: pick the best, roll back.
#
# **Transfer.** Trained layers can start another model (exercise 2).
#
# **Sharing.** Others can use the model without your data or compute.

# %% [markdown]
# Save the checkpoint after 3 epochs (parameters, trainer states, generator state, epoch),
# throw everything away, restore into a fresh model and trainer and train the remaining epochs
# into `resumed`.

# %% nbgrader={"grade": false, "grade_id": "mxnet-ex1-resume", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS, STOP = 6, 3
uninterrupted, trainer = make_model()
train(uninterrupted, trainer, onp.random.default_rng(1), EPOCHS)

### BEGIN SOLUTION
model, trainer = make_model()
rng = onp.random.default_rng(1)
train(model, trainer, rng, STOP)
model.save_parameters("ckpt.params")
trainer.save_states("ckpt.states")
with open("ckpt.json", "w") as f:
    json.dump({"epoch": STOP, "rng": rng.bit_generator.state}, f)
del model, trainer, rng  # the interruption

resumed, trainer = make_model(seed=123)
resumed.load_parameters("ckpt.params")
trainer.load_states("ckpt.states")
with open("ckpt.json") as f:
    meta = json.load(f)
rng = onp.random.default_rng()
rng.bit_generator.state = meta["rng"]
start = meta["epoch"]
train(resumed, trainer, rng, EPOCHS - start)
### END SOLUTION
start, same_parameters(resumed, uninterrupted)

# %% nbgrader={"grade": true, "grade_id": "mxnet-ex1-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: the resumed run ends with exactly the parameters of the uninterrupted one
assert same_parameters(resumed, uninterrupted)
assert not same_parameters(make_model(seed=123)[0], uninterrupted)
### BEGIN HIDDEN TESTS
assert start == STOP
assert os.path.exists("ckpt.states")
### END HIDDEN TESTS

# %% [markdown]
# What does loading cost compared with retraining? Timings vary from run to run, so the
# next cell's printed numbers are not compared by the tests; the check after it is.

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock timings differ on every run and machine)
t0 = time.perf_counter()
model, trainer = make_model()
train(model, trainer, onp.random.default_rng(1), EPOCHS)
npx.waitall()
retrain_s = time.perf_counter() - t0
model.save_parameters("mlp.params")
t0 = time.perf_counter()
clone, _ = make_model()
clone.load_parameters("mlp.params")
npx.waitall()
load_s = time.perf_counter() - t0
print(f"retrain {EPOCHS} epochs: {retrain_s * 1e3:.1f} ms, load: {load_s * 1e3:.1f} ms "
      f"({retrain_s / load_s:.0f}x faster)")

# %% [markdown]
# **Reproducibility and sharing**: the loaded clone gives exactly the original's outputs.

# %%
load_s < retrain_s, bool((clone(X) == model(X)).all())

# %% [markdown]
# ## Exercise 2
#
# Assume that we want to reuse only parts of a network to be incorporated into a network having
# a different architecture. How would you go about using, say the first two layers from a
# previous network in a new network?

# %% [markdown] nbgrader={"grade": true, "grade_id": "mxnet-ex2-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# Load the saved parameters into an instance of the *old* architecture, slice its `net`
# (`net[:2]`: the first two `Dense` layers, a `HybridSequential` sharing the same parameters)
# and put it in front of new layers: `d2l_utils.mxnet.ReusedMLP` does that, and initialises
# only the new layers. Then:
#
# * **freeze** the reused layers with `param.grad_req = "null"`: no gradient is computed for
#   them and the trainer leaves them alone;
# * **fine-tune** them with a smaller learning rate: `param.lr_mult = 0.1`.

# %% [markdown]
# Build `new_model`, a `ReusedMLP` with 3 outputs and hidden widths `[8, 4]` around the first
# two layers of a `MulMLP` loaded from `mlp.params`, with the reused layers frozen.

# %% nbgrader={"grade": false, "grade_id": "mxnet-ex2-reuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
y3 = y % 3  # the new task: 3 classes
mx.random.seed(2)
### BEGIN SOLUTION
old, _ = make_model(seed=7)
old.load_parameters("mlp.params")
reused = old.net[:2]
new_model = d2l.ReusedMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1, reused_layer=reused)
new_model(X[:1])
for param in reused.collect_params().values():
    param.grad_req = "null"
### END SOLUTION
new_model.net

# %% [markdown]
# Training shows what moves: the reused weights stay as saved, the new layers change, and the
# loss on the new task goes down.

# %%
trainable = {k: v for k, v in new_model.collect_params().items() if v.grad_req != "null"}
optimizer = gluon.Trainer(trainable, "sgd", {"learning_rate": 0.1})
before = {k: v.data().asnumpy() for k, v in new_model.collect_params().items()}
loss0 = float(new_model.loss(new_model(X), y3))
for _ in range(20):
    with autograd.record():
        loss = new_model.loss(new_model(X), y3)
    loss.backward()
    optimizer.step(1)
loss1 = float(new_model.loss(new_model(X), y3))
[onp.array_equal(before[k], v.data().asnumpy()) for k, v in new_model.collect_params().items()], loss1 < loss0

# %% nbgrader={"grade": true, "grade_id": "mxnet-ex2-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: reused layers carry the saved weights and stayed frozen; the new layers were trained
assert onp.array_equal(new_model.net[0][0].weight.data().asnumpy(), clone.net[0].weight.data().asnumpy())
assert onp.array_equal(new_model.net[0][1].bias.data().asnumpy(), clone.net[1].bias.data().asnumpy())
assert all(p.grad_req == "null" for p in new_model.net[0].collect_params().values())
assert loss1 < loss0
### BEGIN HIDDEN TESTS
assert new_model(X).shape == (len(X_np), 3)
assert new_model.net[1].weight.shape == (8, 32)
### END HIDDEN TESTS

# %% [markdown]
# To **fine-tune** instead, compute gradients again and scale the reused layers' learning rate
# down with `lr_mult`:

# %%
for param in new_model.net[0].collect_params().values():
    param.grad_req, param.lr_mult = "write", 0.1
finetune = gluon.Trainer(new_model.collect_params(), "sgd", {"learning_rate": 0.1})
w0 = new_model.net[0][0].weight.data().asnumpy()
with autograd.record():
    loss = new_model.loss(new_model(X), y3)
loss.backward()
finetune.step(1)
not onp.array_equal(w0, new_model.net[0][0].weight.data().asnumpy())

# %% [markdown]
# ## Exercise 3
#
# How would you go about saving the network architecture and parameters? What restrictions
# would you impose on the architecture?

# %% [markdown] nbgrader={"grade": true, "grade_id": "mxnet-ex3-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# **`hybridize()` + `export()`.** A hybridized block is traced into a symbolic graph on its
# next forward pass; `export(path)` then writes the graph as `path-symbol.json` and the
# parameters as `path-0000.params`. `gluon.SymbolBlock.imports` loads the pair in a process
# that has none of the model's Python code (shown below in a fresh process; it still needs
# MXNet, and on current NumPy the `numpy.bool` alias).
#
# Restrictions, each shown below where it can be:
#
# 1. **Only `HybridBlock`s** can be hybridized: every layer must be expressible as graph
#    operators, and custom layers must be `HybridBlock`s too.
# 2. **Shapes must be known**: with deferred initialisation, export before a forward pass
#    fails.
# 3. **Python control flow on array values** cannot be stored: the exported graph holds
#    operators only. Use `npx.cond`/`np.where` or keep it out of `forward`.
# 4. **Pickles run code**: use `save_parameters`/`export`, not `pickle` of blocks.
# 5. **Versions**: MXNet is retired; its formats are read only by MXNet, so keep an exported
#    copy in a neutral format too (see `notebooks/portable-checkpoints`).

# %% [markdown]
# `MulMLP` itself is a d2l `Module` (a plain `Block`); its `net` is the `HybridSequential`.
# Hybridize the trained `model.net`, run it once, and export it to `mlp-symbol.json` and
# `mlp-0000.params`.

# %% nbgrader={"grade": false, "grade_id": "mxnet-ex3-export", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
model.net.hybridize()
model.net(X[:8])  # the pass that builds the graph
model.net.export("mlp")
### END SOLUTION
sorted(f for f in os.listdir() if f.startswith("mlp-"))

# %% [markdown]
# The honest test: load in a fresh process that cannot import `d2l_utils`.

# %%
FRESH = """
import sys
sys.modules["d2l_utils"] = None  # the model's Python classes are not available here
import numpy
numpy.bool = numpy.bool_  # MXNet 1.9.1 on NumPy 1.24+ (see the walkthrough)
import mxnet as mx
from mxnet import gluon, np, npx
npx.set_np()
net = gluon.SymbolBlock.imports("mlp-symbol.json", ["data"], "mlp-0000.params")
numpy.save("out-export.npy", net(np.array(numpy.load("x.npy"))).asnumpy())
print("loaded")
"""
onp.save("x.npy", X_np[:8])
expected = model(X[:8]).asnumpy()
subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True).stdout.strip()

# %% nbgrader={"grade": true, "grade_id": "mxnet-ex3-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# tests: the exported model runs without the model's classes and gives the same outputs
assert onp.allclose(onp.load("out-export.npy"), expected, atol=1e-6)
### BEGIN HIDDEN TESTS
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # SymbolBlock notes it cannot infer the input's dtype
    imported = gluon.SymbolBlock.imports("mlp-symbol.json", ["data"], "mlp-0000.params")
assert onp.allclose(imported(X[:8]).asnumpy(), expected, atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# **Restriction 2, shapes.** A model that has not seen a batch has no parameter shapes (and
# no graph), so there is nothing to export:

# %%
unseen = d2l.MulMLP(**HPARAMS)
unseen.net.hybridize()
try:
    unseen.net.export("unseen")
except Exception as err:
    print(type(err).__name__)

# %% [markdown]
# **Restriction 3, control flow on values.** The exported file holds operators only, no
# Python: list them. A branch written as a Python `if` on an array could not appear here; it
# has to be an operator (`np.where`, `npx.cond`).

# %%
sorted({node["op"] for node in json.load(open("mlp-symbol.json"))["nodes"]})

# %% [markdown]
# **Restriction 5, versions.** The symbol file records the MXNet version that wrote it:

# %%
json.load(open("mlp-symbol.json"))["attrs"]["mxnet_version"]

# %% [markdown]
# ## Summary
#
# * A checkpoint that resumes exactly holds the parameters, the trainer's states, the shuffling
#   generator's state and the epoch.
# * Slicing `net[:2]` reuses layers with their parameters; freeze with `grad_req = "null"`,
#   fine-tune with `lr_mult`.
# * `hybridize()` + `export()` saves the graph and the parameters; `SymbolBlock.imports` loads
#   them without the model's code. Only hybridizable layers, known shapes, and no Python control
#   flow on values.
