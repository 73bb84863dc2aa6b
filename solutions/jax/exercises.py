# %% [markdown]
# # File I/O: Exercises (JAX / Flax)
#
# The three exercises at the end of the chapter, each answered in words and shown with cells
# you can run. Cells marked *tests* check your work; run them after your own code.
# Everything is small enough to run on a laptop CPU in seconds, with data made in the notebook.

# %%
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.export  # a submodule: not loaded by `import jax`
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import linen as nn
from flax import nnx

import d2l_utils
from d2l_utils import jax as d2l

workdir = d2l_utils.scratch_dir("jax", "exercises", clean=True)
os.chdir(workdir)
X_np, y_np = d2l_utils.make_classification(n=512, num_inputs=20, num_classes=10, seed=0)
X, y = jnp.asarray(X_np), jnp.asarray(y_np)
X.shape, y.shape

# %% [markdown]
# The model for all three exercises is `d2l_utils.jax.MulMLP`, a Flax linen module: flatten,
# a `Dense` + ReLU per hidden width, then the output layer. In JAX a model is a pure function
# of its parameters, so "the model's state" is the parameter pytree, the optimizer's state
# pytree and the PRNG key: all plain arrays. The helpers below initialise them and train with
# SGD with momentum, shuffling with keys split from one seed.
#
# The state keeps the key as its data, `jax.random.key_data(jax.random.key(1))`: two `uint32`
# words, the very array the book's `jax.random.PRNGKey(1)` returns. A typed key
# (`jax.random.key`) is not a number, and NumPy's files cannot hold it (see the walkthrough);
# as data, the whole state is numbers, and `jax.random` accepts the data as a key.
#
# The graded exercises use linen, as the book does; after each one, an ungraded demonstration
# shows what changes with Flax NNX (`d2l_utils.jax.NNXMulMLP`, `NNXReusedMLP`).

# %%
model = d2l.MulMLP(num_outputs=10, num_hiddens=(64, 32), lr=0.1)
tx = optax.sgd(model.lr, momentum=0.9)


def init(seed=0):
    params = model.init(jax.random.key(seed), X[:1])
    return {"params": params, "opt_state": tx.init(params),
            "key": jax.random.key_data(jax.random.key(1)), "epoch": 0}


@jax.jit
def step(params, opt_state, Xb, yb):
    grads = jax.grad(lambda p: model.loss(model.apply(p, Xb), yb))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def train(state, epochs, batch_size=64):
    params, opt_state, key = state["params"], state["opt_state"], state["key"]
    for _ in range(epochs):
        key, sub = jax.random.split(key)
        order = jax.random.permutation(sub, len(X_np))
        for i in range(0, len(X_np), batch_size):
            idx = order[i:i + batch_size]
            params, opt_state = step(params, opt_state, X[idx], y[idx])
    return {"params": params, "opt_state": opt_state, "key": key,
            "epoch": state["epoch"] + epochs}


def same_tree(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return (jax.tree.structure(a) == jax.tree.structure(b)
            and all(np.array_equal(u, v) for u, v in zip(la, lb)))


# %% [markdown]
# ## Exercise 1
#
# Even if there is no need to deploy trained models to a different device, what are the
# practical benefits of storing model parameters?

# %% [markdown] nbgrader={"grade": true, "grade_id": "jax-ex1-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# **Resuming.** Training can stop at any time: a crash, a time limit, a laptop lid. A
# checkpoint written every epoch means you lose at most one epoch. To resume *exactly*, a
# checkpoint needs the parameters, the optimizer state (the momentum), the PRNG key that the
# shuffling draws from, and the epoch. In JAX these are all arrays in pytrees, and Orbax saves
# the whole pytree at once; the resumed run then ends with bit-for-bit the same parameters as a
# run that never stopped (shown below).
#
# **Cost.** Restoring takes milliseconds; recomputing means training again (measured below).
#
# **Reproducibility and comparison.** A stored model gives the same outputs tomorrow, so
# results can be checked and models compared without retraining.
#
# **Versioning.** Orbax's `CheckpointManager` keeps numbered steps: pick the best, roll back.
#
# **Transfer.** Trained parameters can start another model (exercise 2).
#
# **Sharing.** Others can use the model without your data or compute.

# %% [markdown]
# Write `save_checkpoint(path, state)` and `load_checkpoint(path, like)`.
#
# * `state` is a training state as `init` and `train` make it: a dict with `"params"`,
#   `"opt_state"`, `"key"` (pytrees of arrays) and `"epoch"` (an int).
# * `path` is an absolute `pathlib.Path` naming a place in an existing folder: your functions
#   may write a file there, several files whose names start with it, or a folder. When
#   `save_checkpoint` returns, the checkpoint is complete.
# * `load_checkpoint(path, like)` returns the saved state with the structure, shapes and dtypes
#   of `like`, a state made by `init` whose values are ignored.
#
# Resuming must be exact: `train` on the returned state for the remaining epochs ends with the
# parameters of a run that never stopped. Hint: `ocp.StandardCheckpointer` saves a pytree;
# restoring the exact structure takes an abstract target.

# %% nbgrader={"grade": false, "grade_id": "jax-ex1-resume", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
def save_checkpoint(path, state):
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, state, force=True)
    checkpointer.wait_until_finished()  # Orbax saves in the background


def load_checkpoint(path, like):
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return ocp.StandardCheckpointer().restore(path, target)
### END SOLUTION

# %% [markdown]
# Train 3 of 6 epochs, save, throw the state away (the interruption), restore and finish:

# %%
EPOCHS, STOP = 6, 3
uninterrupted = train(init(), EPOCHS)
state = train(init(), STOP)
save_checkpoint(workdir / "ckpt", state)
del state  # the interruption
restored = load_checkpoint(workdir / "ckpt", init(seed=123))
resumed = train(restored, EPOCHS - int(restored["epoch"]))
print("restored epoch:", int(restored["epoch"]))
print("resumed run ends like the uninterrupted one:",
      same_tree(resumed["params"], uninterrupted["params"]))

# %% nbgrader={"grade": true, "grade_id": "jax-ex1-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: your functions on a state of their own, in a fresh folder
folder = Path(tempfile.mkdtemp())
saved_state = train(init(seed=5), STOP)
save_checkpoint(folder / "run", saved_state)
back = load_checkpoint(folder / "run", init(seed=6))
assert int(back["epoch"]) == STOP, "load_checkpoint returns the wrong epoch"
assert same_tree(back["params"], saved_state["params"]), "the restored parameters differ"
assert same_tree(train(back, EPOCHS - STOP)["params"], train(init(seed=5), EPOCHS)["params"]), \
    "resuming from the restored state does not end like the uninterrupted run"

# %% [markdown]
# What does restoring cost compared with retraining? Timings vary from run to run, so the
# next cell's printed numbers are not compared by the tests; the check after it is.

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock timings differ on every run and machine)
t0 = time.perf_counter()
trained = train(init(), EPOCHS)
jax.block_until_ready(trained["params"])
retrain_s = time.perf_counter() - t0
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(workdir / "mlp", trained["params"], force=True)
checkpointer.wait_until_finished()
t0 = time.perf_counter()
loaded = checkpointer.restore(workdir / "mlp", trained["params"])
load_s = time.perf_counter() - t0
print(f"retrain {EPOCHS} epochs: {retrain_s * 1e3:.1f} ms, load: {load_s * 1e3:.1f} ms "
      f"({retrain_s / load_s:.0f}x faster)")

# %% [markdown]
# **Reproducibility and sharing**: the restored parameters give exactly the original outputs.

# %%
print("the restored parameters give the same outputs:",
      bool(jnp.array_equal(model.apply(loaded, X), model.apply(trained["params"], X))))

# %% [markdown]
# **With Flax NNX** (ungraded): the training state lives in objects. The model holds the
# parameters, an `nnx.Optimizer` the momentum and the step count, an `nnx.Rngs` the shuffling
# key (a typed key). `nnx.Optimizer` needs `wrt=` (the variables it trains) and takes the model
# in `update(model, grads)`: both since Flax 0.11.0
# ([NNX 0.10 to NNX 0.11](https://flax.readthedocs.io/en/latest/migrating/nnx_010_to_nnx_011.html)).
# Training changes the objects in place.

# %%
def nnx_init():
    net = d2l.NNXMulMLP(10, (64, 32), 0.1, num_inputs=20, rngs=nnx.Rngs(0))
    return net, nnx.Optimizer(net, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param), nnx.Rngs(shuffle=1)


@nnx.jit
def nnx_step(net, optimizer, Xb, yb):
    optimizer.update(net, nnx.grad(lambda m: m.loss(m(Xb), yb))(net))


def nnx_train(run, epochs, batch_size=64):
    net, optimizer, rngs = run
    for _ in range(epochs):
        order = jax.random.permutation(rngs.shuffle(), len(X_np))  # a new key from the stream
        for i in range(0, len(X_np), batch_size):
            idx = order[i:i + batch_size]
            nnx_step(net, optimizer, X[idx], y[idx])


# %% [markdown]
# `nnx.state` gathers all three into one pytree. Orbax saves it, the typed key included (it
# stores the key's data and the generator's name), and restores it into the state of an
# abstract run (`nnx.eval_shape`); `nnx.merge` rebuilds the objects. Resuming is exact here too:

# %%
nnx_uninterrupted = nnx_init()
nnx_train(nnx_uninterrupted, EPOCHS)
run = nnx_init()
nnx_train(run, STOP)
checkpointer.save(workdir / "nnx-run", nnx.state(run), force=True)
checkpointer.wait_until_finished()
del run  # the interruption
graphdef, abstract_state = nnx.split(nnx.eval_shape(nnx_init))
run = nnx.merge(graphdef, checkpointer.restore(workdir / "nnx-run", abstract_state))
print("restored: optimizer step", int(run[1].step[...]), "and a key of dtype",
      run[2].shuffle.key[...].dtype)
nnx_train(run, EPOCHS - STOP)
print("resumed run ends like the uninterrupted one:",
      same_tree(nnx.state(run[0]), nnx.state(nnx_uninterrupted[0])))

# %% [markdown]
# ## Exercise 2
#
# Assume that we want to reuse only parts of a network to be incorporated into a network having
# a different architecture. How would you go about using, say the first two layers from a
# previous network in a new network?

# %% [markdown] nbgrader={"grade": true, "grade_id": "jax-ex2-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# In Flax the architecture (the module) and the parameters (a nested dict) are separate, so
# reuse is a dict operation. Restore the saved parameters, build the new module around a layer
# of the same shape (`d2l_utils.jax.ReusedMLP` takes `reused_layer=nn.Dense(64)` after the
# flatten), initialise it (the new layers get fresh random values) and copy the saved
# `Dense_0` subtree into its `reused_layer` slot.
#
# * **Freeze** with `optax.multi_transform`: label the reused subtree `"frozen"` and give it
#   `optax.set_to_zero()`, the rest a normal optimizer.
# * **Fine-tune** with a smaller learning rate for the reused label instead.

# %% [markdown]
# Write `build_reused(saved)` returning `(new_model, new_params, new_tx)`.
#
# * `saved`: the variables of a trained `MulMLP(num_outputs=10, num_hiddens=(64, 32), lr=0.1)`
#   on 20 input features, as `model.init` returns them and Orbax restores them:
#   `{"params": {"Dense_0": {"kernel": (20, 64), "bias": (64,)}, "Dense_1": ..., "Dense_2": ...}}`.
# * `new_model`: a Flax module: the saved `Dense_0` + ReLU, new `Dense` + ReLU layers of
#   widths 8 and 4, and a new output layer of 3 units. `new_model.apply(new_params, X)`
#   returns logits of shape `(n, 3)`.
# * `new_params`: its variables, holding the saved `Dense_0` kernel and bias; new layers random.
# * `new_tx`: an optax optimizer that leaves the reused layer exactly as saved and trains
#   every new layer.

# %% nbgrader={"grade": false, "grade_id": "jax-ex2-reuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
def build_reused(saved):
    first = saved["params"]["Dense_0"]
    new_model = d2l.ReusedMLP(num_outputs=3, num_hiddens=(8, 4), lr=0.1,
                              reused_layer=nn.Dense(first["kernel"].shape[1]))
    new_params = new_model.init(jax.random.key(2), jnp.zeros((1, first["kernel"].shape[0])))
    new_params["params"]["reused_layer"] = jax.tree.map(jnp.asarray, first)
    labels = {"params": {k: "frozen" if k == "reused_layer" else "train"
                         for k in new_params["params"]}}
    new_tx = optax.multi_transform({"train": optax.sgd(0.1), "frozen": optax.set_to_zero()},
                                   labels)
    return new_model, new_params, new_tx
### END SOLUTION

# %% [markdown]
# Restore the parameters saved above and build the new model for a 3-class task:

# %%
saved = checkpointer.restore(workdir / "mlp", trained["params"])
y3 = y % 3  # the new task: 3 classes
new_model, new_params, new_tx = build_reused(saved)
jax.tree.map(jnp.shape, new_params)

# %% [markdown]
# Training shows what moves: the reused parameters stay as saved, the new ones change, and the
# loss on the new task goes down.

# %%
def new_loss(p):  # cross-entropy on the 3-class task
    return optax.softmax_cross_entropy_with_integer_labels(new_model.apply(p, X), y3).mean()


@jax.jit  # one compiled step: twenty op-by-op steps take seconds, compiled ones milliseconds
def new_step(p, s):
    updates, s = new_tx.update(jax.grad(new_loss)(p), s, p)
    return optax.apply_updates(p, updates), s


p, s = new_params, new_tx.init(new_params)
loss0 = float(new_loss(p))
for _ in range(20):
    p, s = new_step(p, s)
loss1 = float(new_loss(p))
print("unchanged by training:", jax.tree.map(
    lambda a, b: bool(jnp.array_equal(a, b)), new_params, p))
print("loss went down:", loss1 < loss0)

# %% nbgrader={"grade": true, "grade_id": "jax-ex2-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: build_reused on parameters of its own: the saved layer is carried over and stays
# frozen, everything else trains
other = init(seed=7)["params"]
m2, p2, tx2 = build_reused(other)
assert m2.apply(p2, X).shape == (len(X_np), 3), "the new model must give 3 outputs"
start = jax.tree.leaves(p2)
for name in ("kernel", "bias"):
    assert any(np.array_equal(a, other["params"]["Dense_0"][name]) for a in start), \
        f"the saved Dense_0 {name} is not among the new parameters"
s2 = tx2.init(p2)
for _ in range(5):
    grads = jax.grad(lambda q: optax.softmax_cross_entropy_with_integer_labels(
        m2.apply(q, X), y3).mean())(p2)
    updates, s2 = tx2.update(grads, s2, p2)
    p2 = optax.apply_updates(p2, updates)
frozen = [any(np.array_equal(a, o) for o in jax.tree.leaves(other["params"]["Dense_0"]))
          for a in start]
for a, b, f in zip(start, jax.tree.leaves(p2), frozen):
    assert np.array_equal(a, b) == f, "the reused layer must stay frozen and the new layers train"

# %% [markdown]
# To **fine-tune** instead, label the reused arrays (here: the ones training left unchanged)
# and give them a small learning rate:

# %%
labels = jax.tree.map(
    lambda a, b: "reused" if jnp.array_equal(a, b) else "new", new_params, p)
finetune_tx = optax.multi_transform({"new": optax.sgd(0.1), "reused": optax.sgd(0.01)}, labels)
updates, _ = finetune_tx.update(jax.grad(new_loss)(p), finetune_tx.init(p), p)
tuned = optax.apply_updates(p, updates)
print("reused arrays now change:", any(
    not jnp.array_equal(a, b) for a, b, l in zip(jax.tree.leaves(p), jax.tree.leaves(tuned),
                                                 jax.tree.leaves(labels)) if l == "reused"))

# %% [markdown]
# **With Flax NNX** (ungraded) a model holds its parameters, so reusing a layer means reusing
# an object, and that changes the answer. Put the trained layer *itself* into a new model and
# the two models *share* it: training the new one changes the old one too. A copy
# (`nnx.clone`, which `d2l.NNXReusedMLP` makes unless `share=True`) is independent.

# %%
trained_nnx = nnx_uninterrupted[0]  # trained in exercise 1's NNX demonstration
first_kernel = np.array(trained_nnx.hidden[0].kernel[...])  # a copy of its values
shared = d2l.NNXReusedMLP(3, (8, 4), 0.1, trained_nnx.hidden[0], rngs=nnx.Rngs(2), share=True)
copied = d2l.NNXReusedMLP(3, (8, 4), 0.1, trained_nnx.hidden[0], rngs=nnx.Rngs(2))
print("same object:", shared.reused_layer is trained_nnx.hidden[0],
      "(shared),", copied.reused_layer is trained_nnx.hidden[0], "(copied)")


def nnx_loss3(net):  # cross-entropy on the 3-class task
    return net.loss(net(X), y3)


optimizer = nnx.Optimizer(shared, optax.sgd(0.1), wrt=nnx.Param)
for _ in range(5):
    optimizer.update(shared, nnx.grad(nnx_loss3)(shared))
print("training the shared model changed the trained model:",
      not np.array_equal(trained_nnx.hidden[0].kernel[...], first_kernel))
print("the copy still holds the trained values:",
      np.array_equal(copied.reused_layer.kernel[...], first_kernel))

# %% [markdown]
# Freezing is a filter, not a label tree. `nnx.Optimizer(model, tx, wrt=filter)` keeps state
# for and updates only the variables the filter selects, and `nnx.DiffState(0, filter)` makes
# `nnx.grad` differentiate only those: `wrt=` alone already freezes, `DiffState` saves computing
# the frozen layer's gradients. `d2l.NNXReusedMLP.NEW` is
# `nnx.All(nnx.Param, nnx.Not(nnx.PathContains("reused_layer")))`.

# %%
new_only = d2l.NNXReusedMLP.NEW
optimizer = nnx.Optimizer(copied, optax.sgd(0.1), wrt=new_only)
before = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(copied, nnx.Param)))
loss0 = float(nnx_loss3(copied))
for _ in range(20):
    optimizer.update(copied, nnx.grad(nnx_loss3, argnums=nnx.DiffState(0, new_only))(copied))
after = nnx.to_pure_dict(nnx.state(copied, nnx.Param))
print("unchanged by training:",
      jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), before, after))
print("loss went down:", float(nnx_loss3(copied)) < loss0)

# %% [markdown]
# ## Exercise 3
#
# How would you go about saving the network architecture and parameters? What restrictions
# would you impose on the architecture?

# %% [markdown] nbgrader={"grade": true, "grade_id": "jax-ex3-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# Two ways:
#
# * **Configuration + parameters.** A linen module is a dataclass: its fields
#   (`num_outputs`, `num_hiddens`, `lr`) *are* the architecture. Save them as JSON next to the
#   Orbax checkpoint; loading rebuilds `MulMLP(**config)` and restores the parameters. This
#   needs the module's code where you load.
# * **`jax.export`.** Trace `model.apply` with the parameters into StableHLO and serialise it.
#   The bytes run with `jax.export.deserialize(...).call(...)` in a process with only JAX:
#   no Flax, no model code (shown below in a fresh process).
#
# Restrictions, each shown below where it can be:
#
# 1. **Shapes are fixed at export** unless declared symbolic (`jax.export.symbolic_shape`).
# 2. **Python control flow on array values** cannot be traced: use `jax.lax.cond`/`where`.
# 3. **Custom code**: the configuration route needs the module class importable; export needs
#    every operation to be traceable JAX.
# 4. **Pickle runs code**: `np.save` of a dict pickles it (see the walkthrough); Orbax and
#    exported StableHLO hold only arrays and a program of array operations.
# 5. **Versions**: serialised exports carry a calling-convention version; old JAX cannot read
#    newer ones.

# %% [markdown]
# Write `export_model(model, params, x, path)`: `model` is a Flax module (such as `MulMLP`),
# `params` its variables, `x` an example input batch and `path` a `pathlib.Path` naming a
# file in an existing folder. Write there the bytes of a serialised `jax.export.Exported`, so
# that in a process with only JAX, `jax.export.deserialize(path.read_bytes()).call(x2)`
# returns `model.apply(params, x2)` for any `x2` of `x`'s shape and dtype.

# %% nbgrader={"grade": false, "grade_id": "jax-ex3-export", "locked": false, "schema_version": 3, "solution": true, "task": false}
### BEGIN SOLUTION
def export_model(model, params, x, path):
    exported = jax.export.export(jax.jit(lambda x: model.apply(params, x)))(x)
    Path(path).write_bytes(exported.serialize())
### END SOLUTION

# %% [markdown]
# Export the trained model for batches of 8, and, for the configuration route, save its
# fields as JSON:

# %%
params = trained["params"]
export_model(model, params, X[:8], workdir / "mlp.jaxexport")
exported = jax.export.deserialize(Path("mlp.jaxexport").read_bytes())
Path("config.json").write_text(json.dumps(
    {"num_outputs": model.num_outputs, "num_hiddens": list(model.num_hiddens), "lr": model.lr}))
rebuilt = d2l.MulMLP(**json.loads(Path("config.json").read_text()))
print("exported for inputs:", exported.in_avals)
print("configuration:", json.loads(Path("config.json").read_text()))
print("rebuilt module, same outputs:",
      bool(jnp.array_equal(rebuilt.apply(params, X[:8]), model.apply(params, X[:8]))))

# %% [markdown]
# The honest test: run the file in a fresh process that imports neither Flax nor `d2l_utils`.

# %%
FRESH = """
import sys
sys.modules["d2l_utils"] = None
sys.modules["flax"] = None  # no model code of any kind
import jax.export, numpy as np
exp = jax.export.deserialize(open("mlp.jaxexport", "rb").read())
np.save("out-export.npy", np.asarray(exp.call(np.load("x.npy"))))
print("loaded")
"""
np.save("x.npy", X_np[:8])
expected = np.asarray(model.apply(params, X[:8]))
subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True).stdout.strip()

# %% nbgrader={"grade": true, "grade_id": "jax-ex3-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# tests: the file ran without the model's code; export_model on a model of its own, loaded
# back with jax.export.deserialize, gives the model's outputs on inputs it was not traced with
assert np.allclose(np.load("out-export.npy"), expected, rtol=1e-5, atol=1e-6)
other_model = d2l.MulMLP(num_outputs=5, num_hiddens=(16,), lr=0.1)
other_params = other_model.init(jax.random.key(9), X[:1])
export_path = Path(tempfile.mkdtemp()) / "other"
export_model(other_model, other_params, X[:6], export_path)
other_exported = jax.export.deserialize(export_path.read_bytes())
assert np.allclose(other_exported.call(X[100:106]), other_model.apply(other_params, X[100:106]),
                   rtol=1e-5, atol=1e-6), "the exported model gives other outputs"

# %% [markdown]
# **Restriction 1, shapes.** The export was traced for a batch of 8; a batch of 4 is refused:

# %%
try:
    exported.call(X[:4])
except ValueError as err:
    print("ValueError:", " ".join(str(err).split()).split(". ")[0])

# %% [markdown]
# **Restriction 2, control flow on values.** Under tracing, an array's value is unknown:

# %%
def sign_flip(x):
    if x.sum() > 0:
        return x
    return -x


try:
    jax.jit(sign_flip)(X[:2])
except jax.errors.TracerBoolConversionError as err:
    print(type(err).__name__)
print("jnp.where gives the branch's result under jit:",
      bool(jnp.array_equal(jax.jit(lambda x: jnp.where(x.sum() > 0, x, -x))(X[:2]), sign_flip(X[:2]))))

# %% [markdown]
# **Restriction 5, versions.** The serialised export records its calling convention:

# %%
print("calling convention version:", exported.calling_convention_version)

# %% [markdown]
# **With Flax NNX** (ungraded) both routes remain. An NNX module is not a dataclass, so the
# configuration is whatever its class keeps: `NNXMulMLP` keeps its constructor's arguments as
# attributes. `nnx.graphdef(model)` is no file format: it holds references to your classes and
# functions. For `jax.export`, trace a function of the input alone, the model inside it:

# %%
net = nnx_uninterrupted[0]
config = {k: getattr(net, k) for k in ("num_inputs", "num_outputs", "num_hiddens", "lr")}
nnx_exported = jax.export.deserialize(
    jax.export.export(jax.jit(lambda x: net(x)))(X[:8]).serialize())
print("configuration:", config)
print("exported NNX model, same outputs:",
      bool(np.allclose(nnx_exported.call(X[:8]), net(X[:8]), rtol=1e-5, atol=1e-6)))

# %% [markdown]
# ## Summary
#
# * The training state in JAX is a pytree (parameters, optimizer state, PRNG key, epoch); Orbax
#   saves and restores it, and resuming from it is exact.
# * Reusing layers is copying parameter subtrees into a new module's parameters; freeze with
#   `optax.multi_transform` + `set_to_zero`, or fine-tune with a small learning rate.
# * In Flax NNX the state is in objects (`nnx.state` gathers it for Orbax); a reused layer is
#   shared unless copied (`nnx.clone`); freezing is a filter (`nnx.Optimizer(..., wrt=...)`,
#   `nnx.DiffState`).
# * Save the architecture as the module's configuration (needs the code) or as a `jax.export`
#   (needs only JAX, fixed shapes, no Python control flow on values).
