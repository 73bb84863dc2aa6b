"""TensorFlow / Keras 3 helpers for the workbook's exercises: MulMLP and ReusedMLP.

The models follow the book's ``d2l.Classifier``. On Keras 3 the book's TensorFlow Classifier
is broken: ``keras.Model.__init__`` assigns ``self.loss = None`` (the slot ``compile()`` fills),
and that instance attribute hides the class's ``loss`` method, so ``model.loss(Y_hat, Y)``
raises ``TypeError: 'NoneType' object is not callable``. ``Classifier`` below makes ``loss`` a
property: reading it gives d2l's loss method, and what Keras assigns is kept aside in
``keras_loss`` (used only if you ``compile()`` the model).

In a process that has imported PyTorch too (the portable-checkpoints notebook), this module
first imports PyTorch's compiler, ``torch._dynamo``: it and TensorFlow each carry a copy of
LLVM, and when PyTorch's loads second (``torch.optim`` and ``torch.export`` import it on first
use) LLVM registers its options twice and the process aborts with "LLVM ERROR: inconsistency
in registered CommandLine options". Loaded first, both copies coexist.
"""

from __future__ import annotations

import sys
import types

if "torch" in sys.modules:
    import torch._dynamo  # noqa: F401  (before TensorFlow: see the module docstring)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from d2l_utils._book import import_book  # noqa: E402

_d2l = import_book("d2l.tensorflow")  # without the plotting and data libraries

Module = _d2l.Module

__all__ = ["Module", "Classifier", "MulMLP", "ReusedMLP"]


class Classifier(_d2l.Classifier):
    """d2l's Classifier with its ``loss`` method working on Keras 3 (see the module docstring)."""

    @property
    def loss(self):
        return types.MethodType(_d2l.Classifier.loss, self)

    @loss.setter
    def loss(self, value):  # keras.Model.__init__ and compile() assign here
        self.__dict__["keras_loss"] = value


class MulMLP(Classifier):
    """``Flatten``, one ``Dense(h, activation="relu")`` per entry of ``num_hiddens``, then
    ``Dense(num_outputs)``; input sizes are inferred on the first call (the model is built)."""

    def __init__(self, num_outputs, num_hiddens, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = keras.Sequential(
            [keras.layers.Flatten()]
            + [keras.layers.Dense(h, activation="relu") for h in num_hiddens]
            + [keras.layers.Dense(num_outputs)])


class ReusedMLP(Classifier):
    """``reused_layer`` (already trained layers, e.g. ``MulMLP.net.layers[:2]``), then new
    ``Dense`` + ReLU layers (one per entry of ``num_hiddens``) and a new output layer."""

    def __init__(self, num_outputs, num_hiddens, lr, reused_layer):
        super().__init__()
        self.save_hyperparameters()
        reused = list(reused_layer) if isinstance(reused_layer, (list, tuple)) else [reused_layer]
        self.net = keras.Sequential(
            reused
            + [keras.layers.Dense(h, activation="relu") for h in num_hiddens]
            + [keras.layers.Dense(num_outputs)])


def _dense_layers(model) -> list:
    layers = []

    def walk(layer):  # depth first, in the order layers were added (the forward order here)
        # a block reached twice (ReusedMLP tracks its reused block twice) counts once
        if isinstance(layer, keras.layers.Dense) and not any(layer is l for l in layers):
            layers.append(layer)
        for sub in getattr(layer, "layers", []):
            walk(sub)

    walk(model)
    if not layers or any(not l.built for l in layers):
        raise ValueError("the model is not built: call it on a batch first")
    return layers


def save_safetensors(model, path):
    """Save the model's ``Dense`` layers (in order) in the portable layout of
    ``d2l_utils.portable``; Keras kernels are (in, out), so they are transposed."""
    from d2l_utils.portable import save_layers

    return save_layers(path, [(l.kernel.numpy().T, l.bias.numpy()) for l in _dense_layers(model)],
                       "tensorflow")


def load_safetensors(model, path, layers=None):
    """Load a portable MLP file into the model's ``Dense`` layers (or only its first
    ``layers``, from the file's first ``layers``), checked first."""
    from d2l_utils.portable import first_layers, load_layers

    dense = first_layers(_dense_layers(model), layers, path)
    values, meta = load_layers(path, [tuple(l.kernel.shape)[::-1] for l in dense], first=layers is not None)
    for l, (w, b) in zip(dense, values):
        l.kernel.assign(w.T)
        l.bias.assign(b)
    return meta


__all__ += ["save_safetensors", "load_safetensors"]
