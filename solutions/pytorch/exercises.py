# %% [markdown]
# # File I/O: Exercises (PyTorch)
#
# The three exercises at the end of the chapter, each answered in words and shown with cells
# you can run. Cells marked *tests* check your work; run them after your own code.
# Everything is small enough to run on a laptop CPU in seconds, with data made in the notebook.

# %%
import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

import d2l_utils
from d2l_utils import torch as d2l

torch._logging.set_logs(dynamic=logging.ERROR)  # keep torch.export's tracing notes off stderr
torch.manual_seed(0)
os.chdir(d2l_utils.scratch_dir("pytorch", "exercises", clean=True))
X_np, y_np = d2l_utils.make_classification(n=512, num_inputs=20, num_classes=10, seed=0)
X, y = torch.from_numpy(X_np), torch.from_numpy(y_np)
X.shape, y.shape

# %% [markdown]
# The model for all three exercises is `d2l_utils.torch.MulMLP`: `Flatten`, then a
# `LazyLinear` + `ReLU` per hidden width, then the output layer. The helpers below build a
# seeded model with its optimizer and train it for some epochs, shuffling with a
# `torch.Generator` we control.

# %%
HPARAMS = {"num_outputs": 10, "num_hiddens": [64, 32], "lr": 0.1}


def make_model(seed=0):
    """A MulMLP with materialised lazy layers, and SGD with momentum (it has state)."""
    torch.manual_seed(seed)
    model = d2l.MulMLP(**HPARAMS)
    model(X[:1])
    return model, torch.optim.SGD(model.parameters(), lr=HPARAMS["lr"], momentum=0.9)


def train(model, optimizer, generator, epochs, batch_size=64):
    for _ in range(epochs):
        for idx in torch.randperm(len(X), generator=generator).split(batch_size):
            optimizer.zero_grad()
            model.loss(model(X[idx]), y[idx]).backward()
            optimizer.step()


def same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# %% [markdown]
# ## Exercise 1
#
# Even if there is no need to deploy trained models to a different device, what are the
# practical benefits of storing model parameters?

# %% [markdown] nbgrader={"grade": true, "grade_id": "pytorch-ex1-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# **Resuming.** Training can stop at any time: a crash, a time limit, a laptop lid. A
# checkpoint written every epoch means you lose at most one epoch. To resume *exactly*, a
# checkpoint needs more than the weights: the optimizer's state (here SGD's momentum buffers),
# the state of every random number generator the loop draws from (the shuffling order), and the
# epoch counter. With all four, the resumed run ends with bit-for-bit the same parameters as a
# run that never stopped (shown below).
#
# **Cost.** Loading a checkpoint takes milliseconds; recomputing it takes the whole training
# time again (measured below, on a model tiny enough to train in a second).
#
# **Reproducibility and comparison.** A stored model gives the same outputs tomorrow, so
# results can be checked and models compared on new data without retraining.
#
# **Versioning.** Saving after each epoch keeps a history: pick the best epoch on validation
# data, roll back, or tell by a file hash whether two runs produced the same model.
#
# **Transfer.** Trained layers can start another model (exercise 2).
#
# **Sharing.** Others can use the model without your data or compute: the state dict
# loads in any process that builds the same architecture.

# %% [markdown]
# Write `save_checkpoint` and `load_checkpoint`. The checkpoint holds the model's and the
# optimizer's state dicts, the generator's state and the number of epochs done;
# `load_checkpoint` restores them into existing objects and returns the epoch. Then simulate
# an interruption: train 3 epochs, save, throw everything away, rebuild from the checkpoint and
# train the remaining 3 epochs into `resumed`.

# %% nbgrader={"grade": false, "grade_id": "pytorch-ex1-resume", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS, STOP = 6, 3

# The reference: six epochs without a break.
uninterrupted, opt = make_model()
train(uninterrupted, opt, torch.Generator().manual_seed(1), EPOCHS)

### BEGIN SOLUTION
def save_checkpoint(path, model, optimizer, generator, epoch):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(), "epoch": epoch}, path)


def load_checkpoint(path, model, optimizer, generator):
    state = torch.load(path)  # only tensors and plain containers: weights_only=True is enough
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return state["epoch"]


model, opt = make_model()
gen = torch.Generator().manual_seed(1)
train(model, opt, gen, STOP)
save_checkpoint("checkpoint.pt", model, opt, gen, STOP)
del model, opt, gen  # the interruption

# A new process would start here: different initial weights, a fresh generator.
resumed, opt = make_model(seed=123)
gen = torch.Generator()
start = load_checkpoint("checkpoint.pt", resumed, opt, gen)
train(resumed, opt, gen, EPOCHS - start)
### END SOLUTION
start, same_parameters(resumed, uninterrupted)

# %% nbgrader={"grade": true, "grade_id": "pytorch-ex1-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: the resumed run ends with exactly the parameters of the uninterrupted one
assert same_parameters(resumed, uninterrupted)
assert not same_parameters(make_model(seed=123)[0], uninterrupted)
### BEGIN HIDDEN TESTS
state = torch.load("checkpoint.pt")
assert state["epoch"] == STOP
assert state["optimizer"]["state"], "the optimizer's momentum buffers must be saved"
### END HIDDEN TESTS

# %% [markdown]
# Without the optimizer state or the generator state the resumed run drifts away; try it by
# leaving one out. What does loading cost compared with retraining? Timings vary from run to
# run, so the next cell's printed numbers are not compared by the tests; the boolean after it
# is.

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock timings differ on every run and machine)
t0 = time.perf_counter()
model, opt = make_model()
train(model, opt, torch.Generator().manual_seed(1), EPOCHS)
retrain_s = time.perf_counter() - t0
torch.save(model.state_dict(), "mlp.params")
t0 = time.perf_counter()
clone, _ = make_model()
clone.load_state_dict(torch.load("mlp.params"))
load_s = time.perf_counter() - t0
print(f"retrain {EPOCHS} epochs: {retrain_s * 1e3:.1f} ms, load: {load_s * 1e3:.1f} ms "
      f"({retrain_s / load_s:.0f}x faster)")

# %%
load_s < retrain_s, same_parameters(clone, model)

# %% [markdown]
# **Reproducibility and sharing**: the loaded clone gives exactly the original's outputs.
# **Versioning**: a fingerprint of the parameters (a hash of every tensor's bytes, in name
# order) identifies a model version. The file's own hash does not: `torch.save` writes a fresh
# random record id into every file, so two saves of the same tensors differ byte for byte.


# %%
def fingerprint(state_dict):
    h = hashlib.sha256()
    for name in sorted(state_dict):
        h.update(name.encode())
        h.update(state_dict[name].numpy().tobytes())
    return h.hexdigest()[:12]


loaded = torch.load("mlp.params")
(torch.equal(clone(X), model(X)),
 fingerprint(loaded) == fingerprint(model.state_dict()),
 fingerprint(loaded) == fingerprint(make_model()[0].state_dict()))

# %% [markdown]
# ## Exercise 2
#
# Assume that we want to reuse only parts of a network to be incorporated into a network having
# a different architecture. How would you go about using, say the first two layers from a
# previous network in a new network?

# %% [markdown] nbgrader={"grade": true, "grade_id": "pytorch-ex2-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# Load the saved parameters into an instance of the *old* architecture, take the modules you
# want (here `net[:2]`: `Flatten` and the first `Linear`, whose weights carry what was learnt),
# and build the new network around them: `d2l_utils.torch.ReusedMLP` puts the given layers
# first, then new hidden and output layers, which start from a fresh random initialisation.
# Then choose:
#
# * **freeze** the reused layers (`requires_grad_(False)`, and leave them out of the optimizer)
#   when the new task has little data: only the new layers learn;
# * **fine-tune** them with a smaller learning rate (an optimizer parameter group) when there
#   is enough data to adapt them without forgetting.
#
# The new layers' input size must match what the reused part outputs (here 64 features);
# `LazyLinear` infers it on the first batch.

# %% [markdown]
# Build `new_model`, a `ReusedMLP` with 3 outputs and hidden widths `[8, 4]` around the first
# two layers of a `MulMLP` loaded from `mlp.params`, freeze the reused layers, and make
# `optimizer` train only the new ones.

# %% nbgrader={"grade": false, "grade_id": "pytorch-ex2-reuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
saved = torch.load("mlp.params")
y3 = y % 3  # the new task: 3 classes
torch.manual_seed(2)
### BEGIN SOLUTION
old, _ = make_model(seed=7)
old.load_state_dict(saved)
reused = old.net[:2]
new_model = d2l.ReusedMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1, reused_layer=reused)
new_model(X[:1])  # materialise the new lazy layers
for p in new_model.net[0].parameters():
    p.requires_grad_(False)
optimizer = torch.optim.SGD([p for p in new_model.parameters() if p.requires_grad], lr=0.1)
### END SOLUTION
new_model.net

# %% [markdown]
# One training step shows what moves: the reused weights stay exactly as saved, the new layers
# change, and a few epochs lower the loss on the new task.

# %%
before = {k: v.clone() for k, v in new_model.state_dict().items()}
loss0 = new_model.loss(new_model(X), y3).item()
for _ in range(20):
    optimizer.zero_grad()
    new_model.loss(new_model(X), y3).backward()
    optimizer.step()
loss1 = new_model.loss(new_model(X), y3).item()
after = new_model.state_dict()
{k: torch.equal(before[k], after[k]) for k in after}, loss1 < loss0

# %% nbgrader={"grade": true, "grade_id": "pytorch-ex2-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: reused layers carry the saved weights and stayed frozen; the new layers were trained
assert torch.equal(new_model.net[0][1].weight, saved["net.1.weight"])
assert torch.equal(new_model.net[0][1].bias, saved["net.1.bias"])
assert not any(p.requires_grad for p in new_model.net[0].parameters())
assert loss1 < loss0
### BEGIN HIDDEN TESTS
assert new_model(X).shape == (len(X), 3)
assert not torch.equal(before["net.2.weight"], after["net.2.weight"])
assert new_model.net[2].weight.shape == (8, 64)
### END HIDDEN TESTS

# %% [markdown]
# To **fine-tune** instead, unfreeze and give the reused layers their own, smaller learning
# rate; now every layer moves, the reused ones less.

# %%
for p in new_model.net[0].parameters():
    p.requires_grad_(True)
reused_ids = {id(p) for p in new_model.net[0].parameters()}
finetune = torch.optim.SGD([
    {"params": list(new_model.net[0].parameters()), "lr": 0.01},
    {"params": [p for p in new_model.parameters() if id(p) not in reused_ids]},
], lr=0.1)
w0 = new_model.net[0][1].weight.clone()
finetune.zero_grad()
new_model.loss(new_model(X), y3).backward()
finetune.step()
not torch.equal(w0, new_model.net[0][1].weight)

# %% [markdown]
# ## Exercise 3
#
# How would you go about saving the network architecture and parameters? What restrictions
# would you impose on the architecture?

# %% [markdown] nbgrader={"grade": true, "grade_id": "pytorch-ex3-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# **`torch.export`** traces the model's forward pass on example inputs into a graph of
# PyTorch operators; `torch.export.save` writes the graph *and* the parameters to one `.pt2`
# file, and `torch.export.load(...).module()` runs it in a process that has never seen the
# model's Python class (shown below in a fresh process). That is the format to save
# architecture and parameters together.
#
# **`torch.save(model)`** pickles the module object. Since PyTorch 2.6 `torch.load` refuses it
# unless you pass `weights_only=False`, that is, unless you trust the file: unpickling can run
# any code. And a pickle stores only a *reference* to the class (`d2l_utils.torch.MulMLP`): the
# class must be importable, unchanged, where the file is loaded (shown failing below).
#
# Restrictions for the architecture, each shown below where it can be:
#
# 1. Lazy layers must be materialised (one forward pass) before export.
# 2. Python control flow that depends on tensor *values* cannot be captured by tracing: use
#    `torch.cond` or keep it out of `forward`. Control flow on shapes and constants is fine.
# 3. Custom layers must be traceable (PyTorch operators only) for `torch.export`; for a
#    pickle their code must be shipped and importable at load time.
# 4. Pickled files run code when loaded: only load your own or trusted ones (the notebook
#    `notebooks/portable-checkpoints.ipynb` shows a payload running).
# 5. Version coupling: a pickle ties the file to the class's code; `.pt2` files to the
#    PyTorch version's operator set and serialisation format.

# %% [markdown]
# Export the trained `model` with `torch.export` on an example batch and save it to
# `mlp.pt2`.

# %% nbgrader={"grade": false, "grade_id": "pytorch-ex3-export", "locked": false, "schema_version": 3, "solution": true, "task": false}
model.eval()
### BEGIN SOLUTION
exported = torch.export.export(model, (X[:8],))
torch.export.save(exported, "mlp.pt2")
### END SOLUTION
torch.save(model, "mlp-pickled.pt")  # the whole module, pickled
os.path.exists("mlp.pt2")

# %% [markdown]
# The honest test of "architecture saved": load each file in a fresh Python process that
# cannot import `d2l_utils` (a `None` entry in `sys.modules` makes any import of it fail).

# %%
FRESH = """
import sys, numpy as np, torch
sys.modules["d2l_utils"] = None  # the model's class is not available here
x = torch.from_numpy(np.load("x.npy"))
try:
    m = {loader}
    np.save("{out}", m(x).detach().numpy())
    print("loaded")
except Exception as e:
    print(type(e).__name__ + ":", str(e).splitlines()[0])
"""


def run_fresh(loader, out):
    code = FRESH.format(loader=loader, out=out)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()


np.save("x.npy", X[:8].numpy())
print("torch.export:", run_fresh('torch.export.load("mlp.pt2").module()', "out-pt2.npy"))
print("pickle:      ", run_fresh('torch.load("mlp-pickled.pt", weights_only=False)', "out-pickle.npy"))

# %%
with torch.no_grad():
    expected = model(X[:8]).numpy()
fresh_out = np.load("out-pt2.npy")
np.array_equal(fresh_out, expected)

# %% nbgrader={"grade": true, "grade_id": "pytorch-ex3-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# tests: the exported file runs without the model's class and gives the same outputs
assert np.allclose(np.load("out-pt2.npy"), expected, atol=1e-6)
### BEGIN HIDDEN TESTS
reloaded = torch.export.load("mlp.pt2").module()
assert torch.allclose(reloaded(X[:8]), model(X[:8]), atol=1e-6)
assert not os.path.exists("out-pickle.npy")
### END HIDDEN TESTS

# %% [markdown]
# **Restriction 1, lazy layers.** A `MulMLP` that has not seen a batch has no weight shapes
# yet, and export refuses it:

# %%
try:
    torch.export.export(d2l.MulMLP(**HPARAMS), (X[:8],))
except ValueError as err:
    print("ValueError, uninitialized parameter:", "uninitialized parameter" in str(err))

# %% [markdown]
# **Restriction 2, data-dependent control flow.** A branch on a tensor's value cannot be
# traced: export stops with a `GuardOnDataDependentSymNode` error.

# %%
class SignFlip(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(20, 3)

    def forward(self, x):
        if x.sum() > 0:  # depends on the data, not on shapes
            return self.lin(x)
        return -self.lin(x)


try:
    with contextlib.redirect_stderr(io.StringIO()):  # export also prints the partial graph
        torch.export.export(SignFlip(), (X[:8],))
except Exception as err:
    print(type(err).__name__)

# %% [markdown]
# **Restriction 4, pickles.** With the default `weights_only=True`, `torch.load` refuses the
# pickled module even in a process that has the class:

# %%
try:
    torch.load("mlp-pickled.pt")
except pickle.UnpicklingError as err:
    print("refused:", "weights_only" in str(err))

# %% [markdown]
# **Restriction 5, versions.** Write down what made the file next to it:

# %%
json.dumps({"torch": torch.__version__.split("+")[0], "format": "torch.export .pt2"})

# %% [markdown]
# ## Summary
#
# * A checkpoint that lets training resume exactly holds the model's and the optimizer's state,
#   the random generators' states and the epoch.
# * Parts of a trained network are ordinary modules: load the old model, take its layers, build
#   the new one around them; freeze or fine-tune.
# * `torch.export` saves architecture and parameters together and loads without the Python
#   class; it needs materialised shapes and no data-dependent Python control flow. A pickled
#   module needs its class and your trust.
