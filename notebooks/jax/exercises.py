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
import time
from pathlib import Path

import jax
import jax.export  # a submodule: not loaded by `import jax`
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import linen as nn

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

# %%
model = d2l.MulMLP(num_outputs=10, num_hiddens=(64, 32), lr=0.1)
tx = optax.sgd(model.lr, momentum=0.9)


def init(seed=0):
    params = model.init(jax.random.PRNGKey(seed), X[:1])
    return {"params": params, "opt_state": tx.init(params), "key": jax.random.PRNGKey(1),
            "epoch": 0}


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
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return (jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
            and all(np.array_equal(u, v) for u, v in zip(la, lb)))


# %% [markdown]
# ## Exercise 1
#
# Even if there is no need to deploy trained models to a different device, what are the
# practical benefits of storing model parameters?

# %% [markdown] nbgrader={"cell_type": "markdown", "checksum": "8c7a8feaf38b5f7bb0c456739c44097c", "grade": true, "grade_id": "jax-ex1-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# YOUR ANSWER HERE

# %% [markdown]
# With `ocp.StandardCheckpointer`, save the whole training state after 3 epochs, throw it
# away, restore it (Orbax wants an absolute path and, to restore the exact structure, an
# abstract target) and train the remaining epochs into `resumed`.

# %% nbgrader={"cell_type": "code", "checksum": "48e3c18c758430cbfc93855796460e23", "grade": false, "grade_id": "jax-ex1-resume", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS, STOP = 6, 3
uninterrupted = train(init(), EPOCHS)

# YOUR CODE HERE
raise NotImplementedError()
int(restored["epoch"]), same_tree(resumed["params"], uninterrupted["params"])

# %% nbgrader={"cell_type": "code", "checksum": "e948e746a5be27ed5e5259ef9ee369b3", "grade": true, "grade_id": "jax-ex1-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: the resumed run ends with exactly the parameters of the uninterrupted one
assert same_tree(resumed["params"], uninterrupted["params"])
assert not same_tree(init(seed=123)["params"], uninterrupted["params"])

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
load_s < retrain_s, bool(jnp.array_equal(model.apply(loaded, X), model.apply(trained["params"], X)))

# %% [markdown]
# ## Exercise 2
#
# Assume that we want to reuse only parts of a network to be incorporated into a network having
# a different architecture. How would you go about using, say the first two layers from a
# previous network in a new network?

# %% [markdown] nbgrader={"cell_type": "markdown", "checksum": "95933c780100b00f68917c8c426588e5", "grade": true, "grade_id": "jax-ex2-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# YOUR ANSWER HERE

# %% [markdown]
# Build `new_model` (3 outputs, hidden widths `(8, 4)`), its parameters `new_params` with the
# saved first layer copied in, and an optimizer `new_tx` that keeps the reused layer frozen.

# %% nbgrader={"cell_type": "code", "checksum": "1c48715ec828672665845b3b61aee6ff", "grade": false, "grade_id": "jax-ex2-reuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
saved = checkpointer.restore(workdir / "mlp", trained["params"])
y3 = y % 3  # the new task: 3 classes
# YOUR CODE HERE
raise NotImplementedError()
jax.tree_util.tree_map(jnp.shape, new_params)

# %% [markdown]
# Training shows what moves: the reused parameters stay as saved, the new ones change, and the
# loss on the new task goes down.

# %%
def new_loss(p):
    return new_model.loss(new_model.apply(p, X), y3)


p, s = new_params, new_tx.init(new_params)
loss0 = float(new_loss(p))
for _ in range(20):
    updates, s = new_tx.update(jax.grad(new_loss)(p), s, p)
    p = optax.apply_updates(p, updates)
loss1 = float(new_loss(p))
{k: same_tree(new_params["params"][k], p["params"][k]) for k in p["params"]}, loss1 < loss0

# %% nbgrader={"cell_type": "code", "checksum": "044a8148d079d2a8c5d4a8d83407011f", "grade": true, "grade_id": "jax-ex2-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: the reused layer carries the saved parameters and stayed frozen; the rest trained
assert same_tree(p["params"]["reused_layer"], saved["params"]["Dense_0"])
assert not same_tree(p["params"]["Dense_0"], new_params["params"]["Dense_0"])
assert loss1 < loss0

# %% [markdown]
# To **fine-tune** instead, give the reused label a small learning rate:

# %%
finetune_tx = optax.multi_transform({"train": optax.sgd(0.1), "frozen": optax.sgd(0.01)}, labels)
updates, _ = finetune_tx.update(jax.grad(new_loss)(p), finetune_tx.init(p), p)
not same_tree(optax.apply_updates(p, updates)["params"]["reused_layer"], p["params"]["reused_layer"])

# %% [markdown]
# ## Exercise 3
#
# How would you go about saving the network architecture and parameters? What restrictions
# would you impose on the architecture?

# %% [markdown] nbgrader={"cell_type": "markdown", "checksum": "b7be99589c55804f28b1f8dc7b713497", "grade": true, "grade_id": "jax-ex3-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# YOUR ANSWER HERE

# %% [markdown]
# Export `model.apply` with the trained parameters for inputs shaped like `X[:8]`, and write
# the serialised bytes to `mlp.jaxexport`. Also save the configuration to `config.json`.

# %% nbgrader={"cell_type": "code", "checksum": "ceedcb8df25497afada6e4fd1306acb8", "grade": false, "grade_id": "jax-ex3-export", "locked": false, "schema_version": 3, "solution": true, "task": false}
params = trained["params"]
# YOUR CODE HERE
raise NotImplementedError()
Path("mlp.jaxexport").exists(), json.loads(Path("config.json").read_text())

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

# %% nbgrader={"cell_type": "code", "checksum": "0ad3c54b8ae9110ed632f82fa3a1f118", "grade": true, "grade_id": "jax-ex3-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# tests: the exported file runs without the model's code and gives the same outputs
assert np.allclose(np.load("out-export.npy"), expected, atol=1e-6)

# %% [markdown]
# **Restriction 1, shapes.** The export was traced for a batch of 8; a batch of 4 is refused:

# %%
try:
    exported.call(X[:4])
except ValueError as err:
    print("ValueError:", "shape" in str(err))

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
bool(jnp.array_equal(jax.jit(lambda x: jnp.where(x.sum() > 0, x, -x))(X[:2]), sign_flip(X[:2])))

# %% [markdown]
# **Restriction 5, versions.** The serialised export records its calling convention:

# %%
exported.calling_convention_version >= 9

# %% [markdown]
# ## Summary
#
# * The training state in JAX is a pytree (parameters, optimizer state, PRNG key, epoch); Orbax
#   saves and restores it, and resuming from it is exact.
# * Reusing layers is copying parameter subtrees into a new module's parameters; freeze with
#   `optax.multi_transform` + `set_to_zero`, or fine-tune with a small learning rate.
# * Save the architecture as the module's configuration (needs the code) or as a `jax.export`
#   (needs only JAX, fixed shapes, no Python control flow on values).
