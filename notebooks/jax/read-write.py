# %% [markdown]
# # File I/O: Loading and Saving (JAX)
#
# So far we have trained models and kept them only in memory: when the kernel stops, they are
# gone. Long training runs need checkpoints, and a trained model is only useful elsewhere once
# its parameters are on disk. This notebook shows how to save and load single arrays, lists and
# dicts of arrays with NumPy's files, and a Flax model's parameters with Orbax.
#
# Every step of the book's section is here, in its order. Where a call from the printed book
# behaves differently on the versions pinned in `requirements.lock`, a note says what changed.

# %%
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import linen as nn
from jax import numpy as jnp

import d2l_utils

os.chdir(d2l_utils.scratch_dir("jax"))

# %% [markdown]
# The last line makes `scratch/jax/` (which git ignores) the working folder, so every file
# below lands there and never next to the notebook.
#
# **Changed from the printed book:** it imported `from d2l import jax as d2l` only to call
# `d2l.get_seed()`, and `from flax.training import checkpoints` to save. `d2l.get_seed()` returns
# a *random* integer, so the book's outputs changed on every run; we use fixed keys instead.
# Importing `d2l.jax` also loads TensorFlow (for its datasets), and so does
# `flax.training.checkpoints`, which Flax has deprecated in favour of Orbax: about 6.6 s and
# 725 MB at import against 0.7 s for Orbax alone. This notebook needs neither.
#
# ## Loading and Saving Arrays
#
# For a single array, `jnp.save` and `jnp.load` write and read NumPy's `.npy` files.

# %%
x = jnp.arange(4)
jnp.save("x-file.npy", x)

# %%
x2 = jnp.load("x-file.npy", allow_pickle=True)
x2

# %% [markdown]
# A single array is stored as a plain numeric array, so `allow_pickle=True` is not needed here.
#
# We can store a list of arrays and read them back into memory.

# %%
y = jnp.zeros(4)
jnp.save("xy-files.npy", [x, y])
x2, y2 = jnp.load("xy-files.npy", allow_pickle=True)
(x2, y2)

# %% [markdown]
# Look at the dtypes: `jnp.save` turns a list of equal-shape arrays into *one* stacked array, so
# the integers of `x` came back as floats.
#
# We can even write and read a dictionary that maps from strings to arrays.

# %%
mydict = {"x": x, "y": y}
jnp.save("mydict.npy", mydict)
mydict2 = jnp.load("mydict.npy", allow_pickle=True)
mydict2

# %% [markdown]
# **What the printed book does not say:** a dict is not an array, so `jnp.save` wraps it in a
# zero-dimensional array of dtype `object` and *pickles* it. NumPy's own `np.load` shows what is
# in the file; `.item()` takes the dict out of that array (`jnp.load` did it for us above).

# %%
np.load("mydict.npy", allow_pickle=True)

# %% [markdown]
# Reading it needs `allow_pickle=True`, which has defaulted to `False` since NumPy 1.16.3:
# unpickling can call any Python function, so a `.npy` file from someone else could run their
# code on your machine. Never pass `allow_pickle=True` for a file you do not trust.
#
# To store several named arrays without pickle, use `np.savez`: each array is its own `.npy`
# member of a zip file, and loading keeps every dtype.

# %%
np.savez("mydict.npz", **mydict)
with np.load("mydict.npz") as f:  # allow_pickle stays False
    mydict2 = {name: jnp.asarray(f[name]) for name in f.files}
mydict2

# %% [markdown]
# ## Loading and Saving Model Parameters
#
# Saving individual weight vectors is useful, but for a whole model we want to save all of its
# parameters at once. In Flax the parameters are not even stored in the model object: `init`
# returns them as a nested dict (a *pytree*) of arrays, and `apply` takes them as an argument.
# So the file holds the parameters, and the code that defines the model is needed again to use
# them. Take the familiar MLP.

# %%
class MLP(nn.Module):
    def setup(self):
        self.hidden = nn.Dense(256)
        self.output = nn.Dense(10)

    def __call__(self, x):
        return self.output(nn.relu(self.hidden(x)))


net = MLP()
X = jax.random.normal(jax.random.PRNGKey(0), (2, 20))
Y, params = net.init_with_output(jax.random.PRNGKey(1), X)

# %% [markdown]
# Next, we store the parameters. **Changed since the printed book (Flax 0.7 onwards):**
# `flax.training.checkpoints` is deprecated; Flax's documentation points to
# [Orbax](https://orbax.readthedocs.io), the checkpointing library it now uses itself. Orbax
# wants an *absolute* path, and writes a folder, not a single file. `force=True` replaces a
# checkpoint left by an earlier run, as `overwrite=True` did in the book.

# %%
ckpt_dir = os.path.abspath("ckpt_dir")
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(os.path.join(ckpt_dir, "1"), params, force=True)
checkpointer.wait_until_finished()  # Orbax writes in the background; wait before reading
sorted(os.listdir(ckpt_dir))

# %% [markdown]
# To recover the model, we instantiate a clone of the original MLP and restore the stored
# parameters. Giving `restore` the tree of shapes and dtypes we expect makes Orbax check the file
# against it and return JAX arrays laid out the same way.

# %%
clone = MLP()
abstract_params = jax.tree.map(ocp.utils.to_shape_dtype_struct, params)
cloned_params = checkpointer.restore(os.path.join(ckpt_dir, "1"), abstract_params)
jax.tree.map(jnp.shape, cloned_params)

# %% [markdown]
# Both instances have the same parameters, so the same input `X` gives the same output.

# %%
Y_clone = clone.apply(cloned_params, X)
Y_clone == Y

# %% [markdown]
# ## Summary
#
# * `jnp.save` and `jnp.load` write and read an array; `np.savez` stores several named arrays
#   without pickle. A dict passed to `jnp.save` is pickled and needs `allow_pickle=True` and
#   `.item()` to read: never do that with a file you do not trust.
# * A Flax model's parameters are a pytree, separate from the module; Orbax saves and restores
#   it (to an absolute path). The architecture itself is code, not part of the file.
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
# Work on them in the exercise workbook, `notebooks/jax/exercises.ipynb`.
