# %% [markdown]
# # File I/O: Loading and Saving (TensorFlow)
#
# So far we have trained models and kept them only in memory: when the kernel stops, they are
# gone. Long training runs need checkpoints, and a trained model is only useful elsewhere once
# its parameters are on disk. This notebook shows how to save and load single tensors, lists and
# dicts of tensors with NumPy's files, and a whole model's weights with Keras.
#
# Every step of the book's section is here, in its order. Where a call from the printed book
# behaves differently on the versions pinned in `requirements.lock`, a note says what changed.

# %%
import os

import numpy as np
import tensorflow as tf

import d2l_utils

tf.keras.utils.set_random_seed(0)  # initial weights and the input X are the same on every run
os.chdir(d2l_utils.scratch_dir("tensorflow"))

# %% [markdown]
# The last line makes `scratch/tensorflow/` (which git ignores) the working folder, so every
# file below lands there and never next to the notebook.
#
# ## Loading and Saving Tensors
#
# TensorFlow has no `save` for a single tensor; NumPy's `.npy` files do the job, since a tensor
# converts to a NumPy array.

# %%
x = tf.range(4)
np.save("x-file.npy", x)

# %%
x2 = np.load("x-file.npy", allow_pickle=True)
x2

# %% [markdown]
# A single tensor is stored as a plain numeric array, so `allow_pickle=True` is not needed here
# (`np.load("x-file.npy")` gives the same array). It comes back as a NumPy array;
# `tf.constant(x2)` makes it a tensor again.
#
# We can store a list of tensors and read them back into memory.

# %%
y = tf.zeros(4)
np.save("xy-files.npy", [x, y])
x2, y2 = np.load("xy-files.npy", allow_pickle=True)
(x2, y2)

# %% [markdown]
# Look at the dtypes: `np.save` turns a list of equal-shape tensors into *one* stacked array, so
# the integers of `x` came back as floats. (A list of tensors of different shapes cannot be
# stacked, and NumPy 1.24 and later refuses to save it without `dtype=object`.)
#
# We can even write and read a dictionary that maps from strings to tensors.

# %%
mydict = {"x": x, "y": y}
np.save("mydict.npy", mydict)
mydict2 = np.load("mydict.npy", allow_pickle=True)
mydict2

# %% [markdown]
# **What the printed book does not say:** a dict is not an array, so `np.save` wraps it in a
# zero-dimensional array of dtype `object` and *pickles* it. Loading it needs
# `allow_pickle=True`, and the dict is inside that array: `.item()` takes it out. `allow_pickle`
# has defaulted to `False` since NumPy 1.16.3 because unpickling can call any Python function:
# never load a pickled `.npy` file from someone you do not trust. Here the tensors themselves
# were pickled, so loading them also imported TensorFlow code.

# %%
mydict2 = np.load("mydict.npy", allow_pickle=True).item()
mydict2

# %% [markdown]
# To store several named arrays without pickle, use `np.savez`: each array is its own `.npy`
# member of a zip file, and loading keeps every dtype.

# %%
np.savez("mydict.npz", **mydict)
with np.load("mydict.npz") as f:  # allow_pickle stays False
    mydict2 = {name: f[name] for name in f.files}
mydict2

# %% [markdown]
# ## Loading and Saving Model Parameters
#
# Saving individual weight vectors is useful, but for a whole model we want to save all of its
# parameters at once. The file holds the *parameters*, not the architecture: the code that
# defines the model is needed again to load them. Take the familiar MLP.

# %%
class MLP(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.flatten = tf.keras.layers.Flatten()
        self.hidden = tf.keras.layers.Dense(units=256, activation=tf.nn.relu)
        self.out = tf.keras.layers.Dense(units=10)

    def call(self, inputs):
        x = self.flatten(inputs)
        x = self.hidden(x)
        return self.out(x)


net = MLP()
X = tf.random.uniform((2, 20))
Y = net(X)

# %% [markdown]
# Next, we store the parameters of the model as a file. The book's call no longer works:

# %%
try:
    net.save_weights("mlp.params")
except ValueError as err:
    print(err)

# %% [markdown]
# **Changed since the printed book (Keras 3, with TensorFlow 2.16):** `save_weights` writes only
# the HDF5-based Keras format, and the file name must end in `.weights.h5`. The old TensorFlow
# checkpoint format, which the book's extension-less name selected, is gone from Keras.

# %%
net.save_weights("mlp.weights.h5")

# %% [markdown]
# To recover the model, we instantiate a clone of the original MLP and read the stored
# parameters into it. **Also new in Keras 3:** `load_weights` needs a *built* model, one whose
# layers have created their variables. A subclassed model is built by calling it once on an
# input of the right shape; loading into an unbuilt clone fails:

# %%
clone = MLP()
try:
    clone.load_weights("mlp.weights.h5")
except ValueError as err:
    print(str(err).splitlines()[0])

# %%
clone = MLP()
clone(X)  # builds the layers: creates variables of the right shapes
clone.load_weights("mlp.weights.h5")

# %% [markdown]
# Both instances have the same parameters, so the same input `X` gives the same output.

# %%
Y_clone = clone(X)
Y_clone == Y

# %% [markdown]
# **New since the printed book (Keras 3.10):** for models too large for one file, `save_weights`
# splits the weights into shards of at most `max_shard_size` gigabytes. The name must then end in
# `.weights.json`: that file is an index saying which shard (`mlp_00000.weights.h5`, ...) holds
# each layer's weights, and `load_weights` takes it. A 20 kB limit splits this 32 kB MLP in two:

# %%
net.save_weights("mlp.weights.json", max_shard_size=20e-6)  # gigabytes: 20 kB
print(sorted(name for name in os.listdir() if name.startswith("mlp")))
sharded = MLP()
sharded(X)
sharded.load_weights("mlp.weights.json")
print("same output:", bool(tf.reduce_all(sharded(X) == Y)))

# %% [markdown]
# ## Saving the architecture too: `.keras` files and `safe_mode`
#
# Keras 3 can also save a whole model, `model.save("name.keras")`: a zip archive holding the
# architecture as JSON, the weights and some metadata. Loading it rebuilds the model from that
# JSON, so the file decides which code runs. A `Lambda` layer stores its Python function in the file, and `load_model` refuses to
# rebuild it unless told the file is trusted (`safe_mode=False`):

# %%
doubled = tf.keras.Sequential([tf.keras.Input((20,)), tf.keras.layers.Dense(10),
                               tf.keras.layers.Lambda(lambda x: 2 * x)])
doubled.save("doubled.keras")
try:
    tf.keras.models.load_model("doubled.keras")
except ValueError as err:
    print(str(err).split(". ")[0])

# %% [markdown]
# **New since the printed book (Keras 3):** `safe_mode`, on by default. It is a safeguard, not
# a sandbox: crafted `.keras` files got past it three times in 2025, by naming any Python
# function in the archive's JSON (CVE-2025-1550, fixed in Keras 3.9), and by switching safe
# mode off from inside the file or reusing Keras's own functions (CVE-2025-9906 and
# CVE-2025-8747, fixed in 3.11.0). Whole models in the legacy `.h5` format ignored it
# altogether until Keras 3.11.3 (CVE-2025-9905). Load a whole model only from someone you
# trust; a weights file (`.weights.h5`, or safetensors) holds no code, only tensors.

# %% [markdown]
# ## Summary
#
# * NumPy's `np.save` and `np.load` write and read a tensor; `np.savez` stores several named
#   tensors without pickle. A dict passed to `np.save` is pickled and needs
#   `allow_pickle=True` and `.item()` to read: never do that with a file you do not trust.
# * Keras 3 saves a model's weights only to files named `*.weights.h5`, and loads them only into
#   a built model. The architecture itself is code, not part of the file.
# * `max_shard_size` splits the weights into several files, listed in a `.weights.json` index.
# * A `.keras` file holds the architecture too; `load_model` refuses code stored in it
#   (`safe_mode`), but load whole models only from sources you trust.
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
# Work on them in the exercise workbook, `notebooks/tensorflow/exercises.ipynb`.
