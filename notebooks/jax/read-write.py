# %% [markdown]
# # File I/O: Loading and Saving (JAX)
#
# So far we have trained models and kept them only in memory: when the kernel stops, they are
# gone. Long training runs need checkpoints, and a trained model is only useful elsewhere once
# its parameters are on disk. This notebook shows how to save and load single arrays, lists and
# dicts of arrays with NumPy's files, and a Flax model's parameters with Orbax: first with linen,
# the Flax API the book uses, then with NNX, the API Flax's documentation teaches today.
#
# Every step of the book's section is here, in its order. Where a call from the printed book
# behaves differently on the versions pinned in `requirements.lock`, a note says what changed.

# %%
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import linen as nn
from flax import nnx
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
# On Python 3.12 and later `d2l.jax` (d2l 1.0.3) does not even import: `get_seed` is
# `random.randint(0, 1e6)`, and since Python 3.12 `randrange` refuses a float (`TypeError`).
# `flax.training.checkpoints` loads TensorFlow: 7 to 12 s and about 800 MB at import, against
# 2 s and 230 MB for Orbax alone (Python 3.13 and the pinned versions, on a busy 2-core
# machine). This notebook needs neither.
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
# zero-dimensional array of dtype `object` and *pickles* it.
#
# `jnp.load` turns only numeric arrays into JAX arrays, so `mydict2` above is still NumPy's
# object array, not a dict (as in the book's output). `.item()` takes the dict out of it:

# %%
mydict2 = mydict2.item()
type(mydict2), mydict2["x"]

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
# **Keys in files (not in the book).** JAX's random keys are now *typed* (see the note on
# `jax.random.key` below): a key is a scalar of dtype `key<fry>`, not a number, so NumPy
# cannot store it.

# %%
key = jax.random.key(42)
try:
    jnp.save("key.npy", key)
except TypeError as err:
    print("TypeError:", str(err).split(". ")[0])

# %% [markdown]
# Store the key's data instead, `jax.random.key_data` (two `uint32` words), and make a key of it
# again after loading with `jax.random.wrap_key_data` (for the default generator, threefry;
# pass `impl=` for another). The loaded key draws the same numbers.

# %%
jnp.save("key.npy", jax.random.key_data(key))
key2 = jax.random.wrap_key_data(jnp.load("key.npy"))
print(key2)
print("the loaded key draws the same numbers:",
      bool(jnp.array_equal(jax.random.normal(key2, (3,)), jax.random.normal(key, (3,)))))

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
X = jax.random.normal(jax.random.key(0), (2, 20))
Y, params = net.init_with_output(jax.random.key(1), X)

# %% [markdown]
# **Changed since the printed book:** the book made keys with `jax.random.PRNGKey(seed)`, a raw
# `uint32` array of shape `(2,)`. JAX's documentation now calls those *legacy* keys and
# recommends `jax.random.key(seed)`, a typed key
# ([JEP 9263](https://docs.jax.dev/en/latest/jep/9263-typed-keys.html)). Both draw the same
# numbers from the same seed.

# %% [markdown]
# Next, we store the parameters. **Changed since the printed book:** the book saved with
# `flax.training.checkpoints`, which has warned since Flax 0.6.7 (March 2023) that it will be
# deprecated in favour of [Orbax](https://orbax.readthedocs.io); Flax's checkpointing guide now
# says it was deprecated in 2023, and uses Orbax. Orbax wants an *absolute* path, and writes a
# folder, not a single file. `force=True` replaces a checkpoint left by an earlier run, as
# `overwrite=True` did in the book.

# %%
ckpt_dir = os.path.abspath("ckpt_dir")
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(os.path.join(ckpt_dir, "1"), params, force=True)
checkpointer.wait_until_finished()  # Orbax writes in the background; wait before reading
sorted(os.listdir(ckpt_dir))

# %% [markdown]
# To recover the model, we instantiate a clone of the original MLP and restore the stored
# parameters. Giving `restore` the tree of shapes and dtypes we expect makes Orbax check the file
# against it and return JAX arrays laid out the same way. (The book wrapped what it restored in
# `flax.core.freeze`: until Flax 0.7.1, `init` returned an immutable `FrozenDict`; now it returns
# plain dicts.)

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
# **New since the printed book:** Orbax has a second, shorter API, V1 (`orbax.checkpoint.v1`,
# in the pinned Orbax 0.12.8): `save` and `load` take a path and a tree, and `overwrite=True`
# replaces an earlier checkpoint. `StandardCheckpointer` above belongs to the older V0 API,
# which Orbax keeps; its documentation plans to make V1 the top-level API at Orbax 1.0. V1's
# `load` also reads checkpoints that V0 saved.

# %%
from orbax.checkpoint import v1 as ocp_v1

v1_dir = os.path.abspath("ckpt_v1")
ocp_v1.save(v1_dir, params, overwrite=True)
v1_params = ocp_v1.load(v1_dir, abstract_params)
print("same parameters:", all(bool(jnp.array_equal(a, b)) for a, b in
                              zip(jax.tree.leaves(params), jax.tree.leaves(v1_params))))

# %% [markdown]
# ## The Same with Flax NNX
#
# **Changed since the printed book:** Flax has a second API, NNX. It came with Flax 0.8.0
# (January 2024, as `flax.experimental.nnx`; `flax.nnx` since 0.8.4), and since Flax 0.10.0
# (October 2024) [Flax's documentation](https://flax.readthedocs.io) teaches NNX, while linen's
# moved to [flax-linen.readthedocs.io](https://flax-linen.readthedocs.io). Linen is not deprecated.

# %% [markdown]
# An NNX module holds its parameters. Its constructor creates them, so it needs the input size
# and an `nnx.Rngs` (a source of keys); calling the model runs it. Here is the same MLP:

# %%
class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(20, 256, rngs=rngs)
        self.output = nnx.Linear(256, 10, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden(x)))


nnx_net = NNXMLP(rngs=nnx.Rngs(1))
Y_nnx = nnx_net(X)

# %% [markdown]
# `nnx.split` separates the model into a *graphdef*, its structure (Python objects, not saved),
# and a *state*, a pytree of arrays. Orbax saves the state as it saved the linen parameters.

# %%
graphdef, state = nnx.split(nnx_net)
nnx_dir = os.path.abspath("nnx_ckpt_dir")
checkpointer.save(os.path.join(nnx_dir, "1"), state, force=True)
checkpointer.wait_until_finished()
jax.tree.map(jnp.shape, nnx.to_pure_dict(state))

# %% [markdown]
# To restore, build the model *abstractly* with `nnx.eval_shape`: shapes and dtypes only, no
# arrays and no random numbers. `nnx.split` of it gives the target for Orbax, and `nnx.merge`
# puts the restored state into the graphdef: a working model with the saved parameters.

# %%
abstract_net = nnx.eval_shape(lambda: NNXMLP(rngs=nnx.Rngs(0)))
graphdef, abstract_state = nnx.split(abstract_net)
restored_state = checkpointer.restore(os.path.join(nnx_dir, "1"), abstract_state)
nnx_clone = nnx.merge(graphdef, restored_state)
print("the restored NNX model gives the same outputs:", bool(jnp.array_equal(nnx_clone(X), Y_nnx)))

# %% [markdown]
# Linen's `Dense` and NNX's `Linear` hold the same arrays under the same names (`kernel` of
# shape (inputs, outputs), `bias`), so the linen parameters restored above fit the NNX model
# too, and it then gives the linen model's outputs:

# %%
nnx.replace_by_pure_dict(abstract_state, cloned_params["params"])
print("with the linen parameters, the NNX model gives the linen model's outputs:",
      bool(jnp.array_equal(nnx.merge(graphdef, abstract_state)(X), Y)))

# %% [markdown]
# ## Summary
#
# * `jnp.save` and `jnp.load` write and read an array; `np.savez` stores several named arrays
#   without pickle. A dict passed to `jnp.save` is pickled and needs `allow_pickle=True` and
#   `.item()` to read: never do that with a file you do not trust.
# * A Flax model's parameters are a pytree, separate from the module; Orbax saves and restores
#   it (to an absolute path), with `StandardCheckpointer` (V0) or `orbax.checkpoint.v1`'s
#   `save` and `load`. The architecture itself is code, not part of the file.
# * A Flax NNX model holds its parameters: `nnx.split` gives the state to save; restoring into
#   the state of `nnx.eval_shape`'s abstract model, then `nnx.merge`, gives the model back.
# * Typed keys (`jax.random.key`) are not numbers: store `jax.random.key_data(key)` and make a
#   key again with `jax.random.wrap_key_data`.
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
