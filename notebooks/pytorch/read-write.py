# %% [markdown]
# # File I/O: Loading and Saving (PyTorch)
#
# So far we have trained models and kept them only in memory: when the kernel stops, they are
# gone. Long training runs need checkpoints, and a trained model is only useful elsewhere once
# its parameters are on disk. This notebook shows how to save and load single tensors, lists and
# dicts of tensors, and a whole model's parameters with PyTorch's own format.
#
# Every step of the book's section is here, in its order. Where a call from the printed book
# behaves differently on the versions pinned in `requirements.lock`, a note says what changed.

# %%
import os
import pickle
import re

import torch
from torch import nn
from torch.nn import functional as F

import d2l_utils

torch.manual_seed(0)  # the model's initial weights and the input X are the same on every run
os.chdir(d2l_utils.scratch_dir("pytorch"))

# %% [markdown]
# The last line makes `scratch/pytorch/` (which git ignores) the working folder, so every file
# below lands there and never next to the notebook.
#
# ## Loading and Saving Tensors
#
# For a single tensor, call `save` with the object and a file name, and `load` to read it back.

# %%
x = torch.arange(4)
torch.save(x, "x-file")

# %%
x2 = torch.load("x-file")
x2

# %% [markdown]
# **Changed since the printed book (PyTorch 2.6):** `torch.load` now defaults to
# `weights_only=True`. The file is a pickle, and a pickle can call any Python function while it
# loads, so before 2.6 opening someone else's checkpoint could run their code on your machine.
# With `weights_only=True` the unpickler accepts only tensors, primitive types and dicts, lists
# and tuples of them. Everything in this notebook (tensors, lists, dicts, state dicts) loads as
# before. Other objects are refused, for example a whole pickled model:

# %%
torch.save(nn.ReLU(), "relu-module")
try:
    torch.load("relu-module")
except pickle.UnpicklingError as err:
    print("refused:", re.search(r"Unsupported global: .*", str(err)).group())

# %% [markdown]
# Passing `weights_only=False` lifts the check; do that only for files you made yourself or
# otherwise trust.
#
# We can store a list of tensors and read them back into memory.

# %%
y = torch.zeros(4)
torch.save([x, y], "x-files")
x2, y2 = torch.load("x-files")
(x2, y2)

# %% [markdown]
# We can even write and read a dictionary that maps from strings to tensors. This is convenient
# when we want to read or write all the weights in a model.

# %%
mydict = {"x": x, "y": y}
torch.save(mydict, "mydict")
mydict2 = torch.load("mydict")
mydict2

# %% [markdown]
# ## Loading and Saving Model Parameters
#
# Saving individual weight vectors is useful, but for a whole model we want to save all of its
# parameters at once. The file holds the *parameters*, not the architecture: the code that
# defines the model is needed again to load them. Take the familiar MLP.

# %%
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.LazyLinear(256)
        self.output = nn.LazyLinear(10)

    def forward(self, x):
        return self.output(F.relu(self.hidden(x)))


net = MLP()
X = torch.randn(size=(2, 20))
Y = net(X)

# %% [markdown]
# Next, we store the parameters of the model as a file with the name "mlp.params". The state
# dict maps each parameter's name to its tensor:

# %%
torch.save(net.state_dict(), "mlp.params")
{name: tuple(p.shape) for name, p in net.state_dict().items()}

# %% [markdown]
# To recover the model, we instantiate a clone of the original MLP and read the stored
# parameters into it. The clone's lazy layers take their shapes from the file.

# %%
clone = MLP()
clone.load_state_dict(torch.load("mlp.params"))
clone.eval()

# %% [markdown]
# The repr still says `LazyLinear(in_features=0)`: the weights are loaded, with their shapes
# from the file, but a lazy layer turns into a plain `Linear` only at its first forward call.
#
# Both instances have the same parameters, so the same input `X` gives the same output.

# %%
Y_clone = clone(X)
Y_clone == Y

# %% [markdown]
# ## Saving the architecture too: PT2 archives
#
# **Changed since the printed book:** the book saves only parameters, because the
# architecture is code. `torch.export` (since PyTorch 2.1) traces `forward` on example inputs
# into a graph of PyTorch operators, and `torch.export.save` writes the graph and the
# parameters to one `.pt2` file. Since PyTorch 2.8 that file is a *PT2 archive*, a zip with a
# documented layout: the graph as JSON (`models/model.json`), and each parameter as raw bytes
# (`data/weights/weight_<n>`) that a JSON config describes. Exercise 3 asks what tracing
# demands of the architecture.

# %%
import zipfile  # noqa: E402

torch.export.save(torch.export.export(net, (X,)), "mlp.pt2")
with zipfile.ZipFile("mlp.pt2") as archive:
    for info in archive.infolist():
        varies = info.filename.endswith("model.json")  # see below
        print(f"{info.filename:<46}" + ("(size varies)" if varies else f"{info.file_size:>8} bytes"))

# %% [markdown]
# The graph records, for every operator, the source line it was traced from, with that
# file's path on the machine that exported it (here the kernel's, which changes from run to
# run): a `.pt2` file tells whoever gets it where it was made.
#
# `torch.export.load(...).module()` rebuilds a runnable module from the graph, with no need
# for the `MLP` class:

# %%
exported = torch.export.load("mlp.pt2").module()
print("class of the loaded module:", type(exported).__name__)
print("outputs equal to the original's:", torch.equal(exported(X), Y))

# %% [markdown]
# A PT2 archive is not a pickle, but it is not pickle-free either: `torch.export.load`
# unpickles, without the `weights_only` guard, any weight its config marks as pickled (how
# tensor subclasses are saved) and some kinds of constants. Load `.pt2` files only from
# sources you trust; to share weights alone, use safetensors (see the portable-checkpoints
# notebook).

# %% [markdown]
# ## Summary
#
# * `torch.save` and `torch.load` write and read tensors, and lists and dicts of tensors.
# * A model's `state_dict()` holds its parameters; `load_state_dict` puts them into a fresh
#   instance of the same class. The architecture itself is code, not part of the file.
# * Since PyTorch 2.6, `torch.load` loads only tensors and plain containers unless told
#   `weights_only=False`: never pass that for a file you do not trust.
# * `torch.export.save` writes the architecture (a traced graph) with the parameters, as a
#   PT2 archive since PyTorch 2.8; loading one can still unpickle, so trust its source.
#
# ## Exercises
#
# 1. Even if there is no need to deploy trained models to a different device, what are the
#    practical benefits of storing model parameters?
# 2. Assume that we want to reuse only parts of a network to be incorporated into a network
#    having a different architecture. How would you go about using, say the first two layers
#    from a previous network in a new network?
# 3. How would you go about saving the network architecture and parameters? What restrictions
#    would you impose on the architecture?
#
# Work on them in the exercise workbook, `notebooks/pytorch/exercises.ipynb`.
