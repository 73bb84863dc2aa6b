# %% [markdown]
# # File I/O: Exercises (MXNet)
#
# The three exercises at the end of the chapter, each answered in words and shown with cells
# you can run. Cells marked *tests* check your work; run them after your own code.
# Each task names the functions to write and their arguments: the tests, and the grader, call
# exactly those, with models and paths of their own.
# Everything is small enough to run on a laptop CPU in seconds, with data made in the notebook.
#
# MXNet 1.9.1 is the last release of a retired project; `d2l_utils.mxnet` restores the NumPy
# alias it needs (see the walkthrough), so import it before anything from MXNet.

# %%
import json
import os
import subprocess
import sys
import tempfile
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
# Write `save_checkpoint(path, model, trainer, rng, epoch)` and
# `load_checkpoint(path, model, trainer, rng)`:
#
# * `model` is a `MulMLP` built by `make_model`, `trainer` its `gluon.Trainer`, `rng` the NumPy
#   `Generator` that `train` shuffles with, and `epoch` the number of epochs done.
# * `path` is a `str` naming a place in an existing folder: your functions may write a file
#   there, several files whose names start with it, or a folder.
# * `load_checkpoint` restores into the objects it is given (a fresh `make_model` and another
#   generator) and returns the epoch. Training them on must end exactly as if training had never
#   stopped.

# %% nbgrader={"grade": false, "grade_id": "mxnet-ex1-resume", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
def save_checkpoint(path, model, trainer, rng, epoch):
    model.save_parameters(path + ".params")
    trainer.save_states(path + ".states")
    with open(path + ".json", "w") as f:
        json.dump({"epoch": epoch, "rng": rng.bit_generator.state}, f)


def load_checkpoint(path, model, trainer, rng):
    model.load_parameters(path + ".params")
    trainer.load_states(path + ".states")
    with open(path + ".json") as f:
        meta = json.load(f)
    rng.bit_generator.state = meta["rng"]  # restored in place, in the generator given
    return meta["epoch"]
### END SOLUTION

# %% [markdown]
# Use them: train 3 of 6 epochs, save, throw everything away (the interruption), restore into a
# fresh model, trainer and generator, and train the remaining epochs into `resumed`.

# %%
EPOCHS, STOP = 6, 3
uninterrupted, trainer = make_model()
train(uninterrupted, trainer, onp.random.default_rng(1), EPOCHS)

model, trainer = make_model()
rng = onp.random.default_rng(1)
train(model, trainer, rng, STOP)
save_checkpoint("ckpt", model, trainer, rng, STOP)
del model, trainer, rng  # the interruption

resumed, trainer = make_model(seed=123)
rng = onp.random.default_rng(123)
start = load_checkpoint("ckpt", resumed, trainer, rng)
train(resumed, trainer, rng, EPOCHS - start)
print("resumed at epoch:", start)
print("same parameters as the uninterrupted run:", same_parameters(resumed, uninterrupted))

# %% nbgrader={"grade": true, "grade_id": "mxnet-ex1-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: save after 2 epochs, restore into fresh objects, train 2 more: as 4 epochs in one go
test_path = os.path.join(tempfile.mkdtemp(), "test-checkpoint")
expected, test_trainer = make_model()
train(expected, test_trainer, onp.random.default_rng(7), 4)
test_model, test_trainer = make_model()
test_rng = onp.random.default_rng(7)
train(test_model, test_trainer, test_rng, 2)
save_checkpoint(test_path, test_model, test_trainer, test_rng, 2)
saved = test_model
test_model, test_trainer = make_model(seed=5)
test_rng = onp.random.default_rng(99)
assert load_checkpoint(test_path, test_model, test_trainer, test_rng) == 2, \
    "load_checkpoint should return the saved epoch"
assert same_parameters(test_model, saved), "the restored parameters differ from the saved ones"
train(test_model, test_trainer, test_rng, 2)
assert same_parameters(test_model, expected), \
    "training on from the checkpoint differs from the run that never stopped"

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
print("the clone gives the same outputs:", bool((clone(X) == model(X)).all()))

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
# Write `reuse_layers(params_path)`:
#
# * `params_path` is the path of a file written by `model.save_parameters(params_path)` for a
#   `MulMLP(**HPARAMS)` (20 inputs, hidden widths `[64, 32]`, 10 outputs).
# * It returns a new, initialised Gluon block (e.g. a `d2l_utils.mxnet.ReusedMLP`) that maps a
#   batch of shape `(n, 20)` to `(n, 3)` scores: the saved model's first two `Dense` layers,
#   with the saved parameters, then new layers of hidden widths `[8, 4]` and 3 outputs.
# * The reused layers are frozen in the model itself: a `gluon.Trainer` over all of the returned
#   block's `collect_params()` leaves them unchanged and trains the new layers.

# %% nbgrader={"grade": false, "grade_id": "mxnet-ex2-reuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
def reuse_layers(params_path):
    old = d2l.MulMLP(**HPARAMS)
    old(np.zeros((1, 20)))  # deferred initialisation: shapes are known after a first batch
    old.load_parameters(params_path)
    reused = old.net[:2]
    for param in reused.collect_params().values():
        param.grad_req = "null"
    new_model = d2l.ReusedMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1, reused_layer=reused)
    new_model(np.zeros((1, 20)))
    return new_model
### END SOLUTION

# %% [markdown]
# Use it on the parameters saved above, `mlp.params`:

# %%
mx.random.seed(2)
new_model = reuse_layers("mlp.params")
new_model

# %% [markdown]
# Training shows what moves: the reused weights stay as saved, the new layers change, and the
# loss on the new task (3 classes) goes down.

# %%
y3 = y % 3  # the new task: 3 classes
cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()
optimizer = gluon.Trainer(new_model.collect_params(), "sgd", {"learning_rate": 0.1})
before = [p.data().asnumpy() for p in new_model.collect_params().values()]
loss0 = float(cross_entropy(new_model(X), y3).mean())
for _ in range(20):
    with autograd.record():
        loss = cross_entropy(new_model(X), y3).mean()
    loss.backward()
    optimizer.step(1)
loss1 = float(cross_entropy(new_model(X), y3).mean())
for b, p in zip(before, new_model.collect_params().values()):
    print(f"{str(p.shape):>9}: {'unchanged' if onp.array_equal(b, p.data().asnumpy()) else 'trained'}")
print("the loss went down:", loss1 < loss0)

# %% nbgrader={"grade": true, "grade_id": "mxnet-ex2-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: the reused layers carry the saved weights and stay frozen; the new layers train
test_path = os.path.join(tempfile.mkdtemp(), "test.params")
saved, _ = make_model(seed=3)
saved.save_parameters(test_path)
saved_arrays = [p.data().asnumpy() for p in saved.collect_params().values()][:4]  # 2 layers
test_model = reuse_layers(test_path)
assert test_model(X[:5]).shape == (5, 3), "the new model should give 3 scores per example"
test_params = list(test_model.collect_params().values())
shapes = [p.shape for p in test_params]
for shape in [(64, 20), (32, 64), (8, 32), (4, 8), (3, 4)]:
    assert shape in shapes, f"no weight of shape {shape} in the new model"


def holds(arrays, a):
    return any(b.shape == a.shape and onp.array_equal(a, b) for b in arrays)


before = [p.data().asnumpy() for p in test_params]
assert all(holds(before, a) for a in saved_arrays), "the saved first two layers are not in the new model"
test_trainer = gluon.Trainer(test_model.collect_params(), "sgd", {"learning_rate": 0.1})
for _ in range(3):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(test_model(X), y % 3).mean()
    loss.backward()
    test_trainer.step(1, ignore_stale_grad=True)
after = [p.data().asnumpy() for p in test_params]
assert all(holds(after, a) for a in saved_arrays), "training changed the reused layers: freeze them"
assert any(b.shape == (3, 4) and not onp.array_equal(a, b) for a, b in zip(before, after)), \
    "training did not change the new output layer"

# %% [markdown]
# To **fine-tune** instead, compute gradients for the frozen parameters again and scale their
# learning rate down with `lr_mult`:

# %%
frozen = [p for p in new_model.collect_params().values() if p.grad_req == "null"]
for param in frozen:
    param.grad_req, param.lr_mult = "write", 0.1
finetune = gluon.Trainer(new_model.collect_params(), "sgd", {"learning_rate": 0.1})
w0 = frozen[0].data().asnumpy()
with autograd.record():
    loss = cross_entropy(new_model(X), y3).mean()
loss.backward()
finetune.step(1)
print("the reused weights now train:", not onp.array_equal(w0, frozen[0].data().asnumpy()))

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
# MXNet, NumPy 1.x and, from NumPy 1.24 on, the `numpy.bool` alias).
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
# Write `export_model(net, x, path)`, which returns `None`:
#
# * `net` is a trained `HybridBlock`: here `model.net`, the `HybridSequential` inside a `MulMLP`
#   (`MulMLP` itself is a d2l `Module`, a plain `Block`); `x` is an example batch for it, an
#   `mxnet.np` array.
# * `path` is a `str` naming a place in an existing folder. Write `path + "-symbol.json"` and
#   `path + "-0000.params"` such that, in a process with MXNet but none of the model's Python
#   code, `gluon.SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params")`
#   computes what `net` computes, for batches of any size.

# %% nbgrader={"grade": false, "grade_id": "mxnet-ex3-export", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
def export_model(net, x, path):
    net.hybridize()  # trace a graph on the next forward pass
    net(x)  # the pass that builds the graph
    net.export(path)
### END SOLUTION

# %% [markdown]
# Use it on the trained model: export to `mlp-symbol.json` and `mlp-0000.params`.

# %%
export_model(model.net, X[:8], "mlp")
sorted(f for f in os.listdir() if f.startswith("mlp-"))

# %% [markdown]
# The honest test: load in a fresh process that cannot import `d2l_utils`. It takes the path,
# a file of inputs and a file for the outputs.

# %%
FRESH = """
import sys
sys.modules["d2l_utils"] = None  # the model's Python classes are not available here
import numpy
numpy.bool = numpy.bool_  # MXNet 1.9.1 on NumPy 1.24+ (see the walkthrough)
import mxnet as mx
from mxnet import gluon, np, npx
npx.set_np()
path, inputs, outputs = sys.argv[1:]
net = gluon.SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params")
numpy.save(outputs, net(np.array(numpy.load(inputs))).asnumpy())
print("loaded")
"""
onp.save("x.npy", X_np[:8])
expected = model(X[:8]).asnumpy()
done = subprocess.run([sys.executable, "-c", FRESH, "mlp", "x.npy", "out-export.npy"],
                      capture_output=True, text=True)
print(done.stdout.strip(), "| same outputs:", onp.allclose(onp.load("out-export.npy"), expected, atol=1e-6))

# %% nbgrader={"grade": true, "grade_id": "mxnet-ex3-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# tests: the exported files load without the model's classes and give the model's outputs
test_path = os.path.join(tempfile.mkdtemp(), "test-export")
assert export_model(model.net, X[:8], test_path) is None
onp.save("x-test.npy", X_np[100:150])  # another batch size than the example
done = subprocess.run([sys.executable, "-c", FRESH, test_path, "x-test.npy", "out-test.npy"],
                      capture_output=True, text=True)
assert done.returncode == 0, "loading in a fresh process failed:\n" + done.stderr[-600:]
assert onp.allclose(onp.load("out-test.npy"), model(X[100:150]).asnumpy(), atol=1e-6), \
    "the loaded model's outputs differ from the model's"

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
