# %% [markdown]
# # File I/O: Loading and Saving (MXNet)
#
# So far we have trained models and kept them only in memory: when the kernel stops, they are
# gone. Long training runs need checkpoints, and a trained model is only useful elsewhere once
# its parameters are on disk. This notebook shows how to save and load single arrays, lists and
# dicts of arrays, and a whole model's parameters with MXNet's own format.
#
# Every step of the book's section is here, in its order. Where a call from the printed book
# behaves differently on the versions pinned in `requirements-mxnet.lock`, a note says what changed.
#
# **MXNet is retired.** Apache MXNet moved to the Apache Attic in 2023; 1.9.1 (2022) is its last
# release and will not get fixes. It was built against NumPy 1.x and uses the alias `numpy.bool`,
# which NumPy 1.24 removed, so a bare `import mxnet` fails on any current NumPy 1.x. Importing
# `d2l_utils.mxnet` first restores that one alias (`numpy.bool = numpy.bool_`, the type it always
# named) and then imports MXNet. NumPy 2 breaks MXNet further, so MXNet has an environment of
# its own: this notebook runs on the `d2l-io-mxnet` kernel (NumPy 1.26), the other frameworks'
# on `d2l-io` (NumPy 2). Use MXNet to follow the book; start new projects with another framework.

# %%
import os

import d2l_utils
import d2l_utils.mxnet  # noqa: F401  (restores numpy.bool, then imports mxnet)
from mxnet import np, npx
from mxnet.gluon import nn

npx.set_np()
npx.random.seed(0)  # the model's initial weights and the input X are the same on every run
os.chdir(d2l_utils.scratch_dir("mxnet"))

# %% [markdown]
# The last line makes `scratch/mxnet/` (which git ignores) the working folder, so every file
# below lands there and never next to the notebook.
#
# ## Loading and Saving Arrays
#
# For a single array, call `npx.save` with a file name and the array, and `npx.load` to read it
# back.

# %%
x = np.arange(4)
npx.save("x-file", x)

# %% [markdown]
# `npx.load` returns what was saved in a container: a single array comes back as a list with one
# element.

# %%
x2 = npx.load("x-file")
x2

# %% [markdown]
# We can store a list of arrays and read them back into memory.

# %%
y = np.zeros(4)
npx.save("x-files", [x, y])
x2, y2 = npx.load("x-files")
(x2, y2)

# %% [markdown]
# We can even write and read a dictionary that maps from strings to arrays. This is convenient
# when we want to read or write all the weights in a model. MXNet's format stores only arrays
# and names, never pickled Python objects, so loading a file cannot run code.

# %%
mydict = {"x": x, "y": y}
npx.save("mydict", mydict)
mydict2 = npx.load("mydict")
mydict2

# %% [markdown]
# ## Loading and Saving Model Parameters
#
# Saving individual weight vectors is useful, but for a whole model we want to save all of its
# parameters at once. The file holds the *parameters*, not the architecture: the code that
# defines the model is needed again to load them. Take the familiar MLP.

# %%
class MLP(nn.Block):
    def __init__(self, **kwargs):
        super(MLP, self).__init__(**kwargs)
        self.hidden = nn.Dense(256, activation="relu")
        self.output = nn.Dense(10)

    def forward(self, x):
        return self.output(self.hidden(x))


net = MLP()
net.initialize()
X = np.random.uniform(size=(2, 20))
Y = net(X)

# %% [markdown]
# Next, we store the parameters of the model as a file with the name "mlp.params".

# %%
net.save_parameters("mlp.params")
{name: p.shape for name, p in net.collect_params().items()}

# %% [markdown]
# To recover the model, we instantiate a clone of the original MLP and read the stored
# parameters into it directly; there is no need to initialize it first.

# %%
clone = MLP()
clone.load_parameters("mlp.params")

# %% [markdown]
# Both instances have the same parameters, so the same input `X` gives the same output.

# %%
Y_clone = clone(X)
Y_clone == Y

# %% [markdown]
# ## Summary
#
# * `npx.save` and `npx.load` write and read arrays, and lists and dicts of arrays.
# * `save_parameters` and `load_parameters` write and read all of a model's parameters; the
#   architecture itself is code, not part of the file.
# * MXNet 1.9.1 is the last release. It runs on NumPy 1.x only (hence its own environment
#   here), and from NumPy 1.24 on it needs the `numpy.bool` alias that `d2l_utils.mxnet` restores.
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
# Work on them in the exercise workbook, `notebooks/mxnet/exercises.ipynb`.
