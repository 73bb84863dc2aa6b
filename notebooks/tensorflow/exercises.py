# %% [markdown]
# # File I/O: Exercises (TensorFlow / Keras 3)
#
# The three exercises at the end of the chapter, each answered in words and shown with cells
# you can run. Cells marked *tests* check your work; run them after your own code.
# Everything is small enough to run on a laptop CPU in seconds, with data made in the notebook.

# %%
import os
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import d2l_utils
from d2l_utils import tensorflow as d2l

os.chdir(d2l_utils.scratch_dir("tensorflow", "exercises", clean=True))
X_np, y_np = d2l_utils.make_classification(n=512, num_inputs=20, num_classes=10, seed=0)
X, y = tf.constant(X_np), tf.constant(y_np)
X.shape, y.shape

# %% [markdown]
# The model for all three exercises is `d2l_utils.tensorflow.MulMLP`: `Flatten`, a
# `Dense(h, activation="relu")` per hidden width, then the output layer.
#
# **Keras 3 and the book's `Classifier`.** `keras.Model.__init__` now assigns `self.loss = None`
# (the slot `compile()` fills), and that attribute hides the `loss` method of the book's
# `d2l.Classifier`: `model.loss(Y_hat, Y)` raises `TypeError: 'NoneType' object is not
# callable`. `d2l_utils.tensorflow.Classifier` turns `loss` back into the method (what Keras
# assigns is kept in `model.keras_loss`):

# %%
model = d2l.MulMLP(num_outputs=10, num_hiddens=[64, 32], lr=0.1)
float(model.loss(model(X[:4]), y[:4])) > 0

# %% [markdown]
# The helpers below build a seeded model with its optimizer (SGD with momentum, which has
# state) and train it, shuffling with a `tf.random.Generator` we control.

# %%
HPARAMS = {"num_outputs": 10, "num_hiddens": [64, 32], "lr": 0.1}


def make_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = d2l.MulMLP(**HPARAMS)
    model(X[:1])  # build: create the weights
    optimizer = keras.optimizers.SGD(HPARAMS["lr"], momentum=0.9)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def train(model, optimizer, generator, epochs, batch_size=64):
    for _ in range(epochs):
        order = tf.argsort(generator.uniform((len(X_np),)))
        for i in range(0, len(X_np), batch_size):
            idx = order[i:i + batch_size]
            with tf.GradientTape() as tape:
                loss = model.loss(model(tf.gather(X, idx)), tf.gather(y, idx))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))


def same_weights(a, b):
    return len(a.weights) == len(b.weights) and all(
        np.array_equal(u.numpy(), v.numpy()) for u, v in zip(a.weights, b.weights))


# %% [markdown]
# ## Exercise 1
#
# Even if there is no need to deploy trained models to a different device, what are the
# practical benefits of storing model parameters?

# %% [markdown] nbgrader={"cell_type": "markdown", "checksum": "3980503b830f35a8db35f8ef17888e20", "grade": true, "grade_id": "tensorflow-ex1-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# YOUR ANSWER HERE

# %% [markdown]
# Save a `tf.train.Checkpoint` of the model, the optimizer, the generator and the epoch after
# 3 epochs, throw everything away, restore into freshly built objects and train the remaining
# epochs into `resumed`.

# %% nbgrader={"cell_type": "code", "checksum": "df071cd48b9b2c7c3cfa7e6d5347de55", "grade": false, "grade_id": "tensorflow-ex1-resume", "locked": false, "schema_version": 3, "solution": true, "task": false}
EPOCHS, STOP = 6, 3

uninterrupted, opt = make_model()
train(uninterrupted, opt, tf.random.Generator.from_seed(1), EPOCHS)

# YOUR CODE HERE
raise NotImplementedError()
start, same_weights(resumed, uninterrupted)

# %% nbgrader={"cell_type": "code", "checksum": "b60f31ab510d07c1c76173a7e44a5ff4", "grade": true, "grade_id": "tensorflow-ex1-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: the resumed run ends with exactly the weights of the uninterrupted one
assert same_weights(resumed, uninterrupted)
assert not same_weights(make_model(seed=123)[0], uninterrupted)

# %% [markdown]
# What does loading cost compared with retraining? The timings vary from run to run, so the
# next cell's printed numbers are not compared by the tests; the check after it is.

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock timings differ on every run and machine)
t0 = time.perf_counter()
model, opt = make_model()
train(model, opt, tf.random.Generator.from_seed(1), EPOCHS)
retrain_s = time.perf_counter() - t0
model.save_weights("mlp.weights.h5")
t0 = time.perf_counter()
clone, _ = make_model()
clone.load_weights("mlp.weights.h5")
load_s = time.perf_counter() - t0
print(f"retrain {EPOCHS} epochs: {retrain_s * 1e3:.1f} ms, load: {load_s * 1e3:.1f} ms "
      f"({retrain_s / load_s:.0f}x faster)")

# %% [markdown]
# **Reproducibility and sharing**: the loaded clone gives exactly the original's outputs.

# %%
load_s < retrain_s, np.array_equal(clone(X).numpy(), model(X).numpy())

# %% [markdown]
# ## Exercise 2
#
# Assume that we want to reuse only parts of a network to be incorporated into a network having
# a different architecture. How would you go about using, say the first two layers from a
# previous network in a new network?

# %% [markdown] nbgrader={"cell_type": "markdown", "checksum": "4817c2170db9878665ac7596e18cbed2", "grade": true, "grade_id": "tensorflow-ex2-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# YOUR ANSWER HERE

# %% [markdown]
# Build `new_model`, a `ReusedMLP` with 3 outputs and hidden widths `[8, 4]` around the first
# two layers of a `MulMLP` loaded from `mlp.weights.h5`, with the reused layers frozen.

# %% nbgrader={"cell_type": "code", "checksum": "4ebe70fa1cf7c2afc6891907a4d7a602", "grade": false, "grade_id": "tensorflow-ex2-reuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
y3 = y % 3  # the new task: 3 classes
keras.utils.set_random_seed(2)
# YOUR CODE HERE
raise NotImplementedError()
[(type(layer).__name__, layer.trainable) for layer in new_model.net.layers]

# %% [markdown]
# Training shows what moves: the reused weights stay as saved, the new layers change, and the
# loss on the new task goes down.

# %%
optimizer = keras.optimizers.SGD(0.1)
saved = [w.numpy() for w in clone.net.layers[1].weights]
before = [w.numpy() for w in new_model.weights]
loss0 = float(new_model.loss(new_model(X), y3))
for _ in range(20):
    with tf.GradientTape() as tape:
        loss = new_model.loss(new_model(X), y3)
    grads = tape.gradient(loss, new_model.trainable_variables)
    optimizer.apply_gradients(zip(grads, new_model.trainable_variables))
loss1 = float(new_model.loss(new_model(X), y3))
[np.array_equal(b, w.numpy()) for b, w in zip(before, new_model.weights)], loss1 < loss0

# %% nbgrader={"cell_type": "code", "checksum": "0caa7962992acc673cf32353676c64c6", "grade": true, "grade_id": "tensorflow-ex2-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# tests: reused layers carry the saved weights and stayed frozen; the new layers were trained
reused_dense = new_model.net.layers[1]
assert all(np.array_equal(a, w.numpy()) for a, w in zip(saved, reused_dense.weights))
assert not reused_dense.trainable and len(new_model.trainable_variables) == 6
assert loss1 < loss0

# %% [markdown]
# To **fine-tune** instead, make the layers trainable again; here their gradients are scaled
# down so they move ten times less than the new layers.

# %%
for layer in new_model.net.layers[:2]:
    layer.trainable = True
reused_ids = {id(v) for v in new_model.net.layers[1].trainable_variables}
w0 = new_model.net.layers[1].kernel.numpy()
with tf.GradientTape() as tape:
    loss = new_model.loss(new_model(X), y3)
grads = tape.gradient(loss, new_model.trainable_variables)
grads = [g * 0.1 if id(v) in reused_ids else g for g, v in zip(grads, new_model.trainable_variables)]
finetune = keras.optimizers.SGD(0.1)  # a Keras optimizer serves the variables it was built for
finetune.apply_gradients(zip(grads, new_model.trainable_variables))
not np.array_equal(w0, new_model.net.layers[1].kernel.numpy())

# %% [markdown]
# ## Exercise 3
#
# How would you go about saving the network architecture and parameters? What restrictions
# would you impose on the architecture?

# %% [markdown] nbgrader={"cell_type": "markdown", "checksum": "6eff9203f89b1db852ecb72123246fa6", "grade": true, "grade_id": "tensorflow-ex3-answer", "locked": false, "points": 0, "schema_version": 3, "solution": true, "task": false}
# YOUR ANSWER HERE

# %% [markdown]
# Save the trained `model`'s network (`model.net`, a `Sequential`) to `mlp.keras`.

# %% nbgrader={"cell_type": "code", "checksum": "de31995f737733f9c13ba6d84b02e90d", "grade": false, "grade_id": "tensorflow-ex3-save", "locked": false, "schema_version": 3, "solution": true, "task": false}
# YOUR CODE HERE
raise NotImplementedError()
os.path.exists("mlp.keras")

# %% [markdown]
# The honest test: load in a fresh Python process that cannot import `d2l_utils`.

# %%
FRESH = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.modules["d2l_utils"] = None  # the model's Python classes are not available here
import keras, numpy as np
try:
    net = keras.models.load_model("{path}")
    np.save("{out}", net(np.load("x.npy")).numpy())
    print("loaded")
except Exception as e:
    print(type(e).__name__)
"""


def run_fresh(path, out):
    code = FRESH.format(path=path, out=out)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()


np.save("x.npy", X_np[:8])
expected = model(X[:8]).numpy()
print(".keras (Sequential):", run_fresh("mlp.keras", "out-keras.npy"))

# %% nbgrader={"cell_type": "code", "checksum": "3d5e5984aed093a16442c97477f29944", "grade": true, "grade_id": "tensorflow-ex3-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# tests: the saved file runs without the model's classes and gives the same outputs
assert np.allclose(np.load("out-keras.npy"), expected, atol=1e-6)

# %% [markdown]
# **Restriction 1.** The subclassed `MulMLP` cannot be saved as it is (it has no
# `get_config`). A registered subclass with a `get_config` saves, but loading it needs its code:

# %%
try:
    model.save("mulmlp.keras")
except NotImplementedError as err:
    print("NotImplementedError:", "get_config" in str(err))


@keras.saving.register_keras_serializable(package="workbook")
class Scale(keras.layers.Layer):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


custom = keras.Sequential([keras.Input((20,)), keras.layers.Dense(3), Scale(2.0)])
custom.save("custom.keras")
print("same process:", keras.models.load_model("custom.keras").layers[-1].factor)
print("fresh process:", run_fresh("custom.keras", "out-custom.npy"))

# %% [markdown]
# **Restriction 2, shapes.** An unbuilt model has no weights to save:

# %%
fresh_model = d2l.MulMLP(**HPARAMS)
try:
    fresh_model.save_weights("unbuilt.weights.h5")
except ValueError as err:
    print("ValueError:", "built" in str(err) or "variables" in str(err))
len(fresh_model.weights)

# %% [markdown]
# **Restriction 3, control flow on values.** Without AutoGraph, a Python `if` on a tensor
# cannot be traced; with it (the default) it becomes a `tf.cond` in the graph.

# %%
def sign_flip(x):
    if tf.reduce_sum(x) > 0:
        return x
    return -x


try:
    tf.function(sign_flip, autograph=False)(X[:2])
except Exception as err:
    print(type(err).__name__)
traced = tf.function(sign_flip)
all(bool(tf.reduce_all(traced(x) == sign_flip(x))) for x in (X[:2], -X[:2]))

# %% [markdown]
# **Restriction 4, code in the file.** A `Lambda` layer's function is stored as bytecode;
# loading it is refused by default:

# %%
lam = keras.Sequential([keras.Input((20,)), keras.layers.Lambda(lambda x: x * 2)])
lam.save("lambda.keras")
try:
    keras.models.load_model("lambda.keras")
except ValueError as err:
    print("ValueError:", "safe_mode" in str(err))

# %% [markdown]
# **Restriction 5, versions.** The file says which Keras wrote it:

# %%
import json
import zipfile

json.loads(zipfile.ZipFile("mlp.keras").read("metadata.json"))["keras_version"] == keras.__version__

# %% [markdown]
# ## Summary
#
# * `tf.train.Checkpoint` saves model, optimizer, random generator and epoch together; restoring
#   all of them resumes training exactly.
# * Reuse layers by putting the loaded layer objects into the new model; freeze with
#   `trainable = False`, or fine-tune with smaller steps.
# * A `.keras` file holds architecture and weights and loads without your code for built-in
#   layers; subclassed models and custom layers need `get_config`, registration and their code,
#   and `Lambda` layers need trust (`safe_mode=False`).
