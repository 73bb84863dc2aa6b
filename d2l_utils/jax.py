"""JAX / Flax helpers for the workbook's exercises: MulMLP and ReusedMLP in both Flax APIs.

* Flax linen (the book's API): ``MulMLP`` and ``ReusedMLP``. A linen module holds no
  parameters: ``init`` returns them as a nested dict and ``apply`` takes them.
* Flax NNX (the API Flax's documentation teaches since Flax 0.10): ``NNXMulMLP`` and
  ``NNXReusedMLP``, the same architectures. An NNX module creates and holds its parameters
  when it is constructed, so it needs the input size (``num_inputs``) and an ``nnx.Rngs``;
  ``nnx.split`` / ``nnx.merge`` turn it into a state pytree (to save with Orbax) and back.
  ``NNXReusedMLP`` copies the layer it reuses (``nnx.clone``) unless ``share=True``, and its
  filters ``NNXReusedMLP.REUSED`` / ``NNXReusedMLP.NEW`` pick the reused and the new
  parameters (for ``nnx.Optimizer(..., wrt=...)`` or ``nnx.DiffState``).

The book's ``d2l.jax`` module (d2l 1.0.3) does not import on Python 3.12 and later (its
``get_seed`` passes a float to ``random.randint``), and before that it imported TensorFlow and
TensorFlow Datasets for its data loaders, seconds and hundreds of MB. The exercises need only its
``Classifier`` behaviour (cross-entropy loss and accuracy), so this module provides a small
``Classifier`` with the same ``loss``/``accuracy`` methods and imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import nnx

__all__ = ["Classifier", "MulMLP", "ReusedMLP", "NNXMulMLP", "NNXReusedMLP"]


class Classifier(nn.Module):
    """Base class of the classifiers: ``loss`` (mean cross-entropy) and ``accuracy`` of logits."""

    @staticmethod
    def loss(Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        losses = optax.softmax_cross_entropy_with_integer_labels(Y_hat, Y.reshape((-1,)))
        return losses.mean() if averaged else losses

    @staticmethod
    def accuracy(Y_hat, Y, averaged=True):
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        correct = (Y_hat.argmax(axis=1).astype(Y.dtype) == Y.reshape(-1)).astype(jnp.float32)
        return correct.mean() if averaged else correct


class MulMLP(Classifier):
    """Flatten, one ``Dense(h)`` + ReLU per entry of ``num_hiddens``, then ``Dense(num_outputs)``.

    Parameters are named ``Dense_0``, ``Dense_1``, ... in order; input sizes are inferred by
    ``init`` from an example batch.
    """

    num_outputs: int
    num_hiddens: Sequence[int]
    lr: float

    @nn.compact
    def __call__(self, X):
        X = X.reshape((X.shape[0], -1))
        for h in self.num_hiddens:
            X = nn.relu(nn.Dense(h)(X))
        return nn.Dense(self.num_outputs)(X)


class ReusedMLP(Classifier):
    """Flatten, ``reused_layer`` (a module whose trained parameters you copy into
    ``params["params"]["reused_layer"]``) + ReLU, then new ``Dense`` + ReLU layers (one per
    entry of ``num_hiddens``) and a new output layer."""

    num_outputs: int
    num_hiddens: Sequence[int]
    lr: float
    reused_layer: Any

    @nn.compact
    def __call__(self, X):
        X = nn.relu(self.reused_layer(X.reshape((X.shape[0], -1))))
        for h in self.num_hiddens:
            X = nn.relu(nn.Dense(h)(X))
        return nn.Dense(self.num_outputs)(X)


def _linear_stack(sizes: Sequence[int], rngs: nnx.Rngs) -> nnx.List:
    """One ``nnx.Linear`` per consecutive pair of ``sizes``, in an ``nnx.List`` (Flax NNX
    refuses a plain Python list of modules as an attribute)."""
    return nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])


class NNXMulMLP(nnx.Module):
    """``MulMLP`` in Flax NNX: flatten, one ``nnx.Linear`` + ReLU per entry of ``num_hiddens``
    (``self.hidden[0]``, ``self.hidden[1]``, ...), then ``self.output``.

    NNX creates the parameters here, so it needs the flattened input size ``num_inputs`` and
    an ``nnx.Rngs``. Kernels are (in, out), as in linen. An NNX module is not a dataclass, so
    the constructor's arguments (all but ``rngs``) are kept as attributes: they are the
    architecture. ``loss`` and ``accuracy`` are ``Classifier``'s.
    """

    loss = staticmethod(Classifier.loss)
    accuracy = staticmethod(Classifier.accuracy)

    def __init__(self, num_outputs: int, num_hiddens: Sequence[int], lr: float, *,
                 num_inputs: int, rngs: nnx.Rngs):
        self.num_inputs, self.num_outputs = num_inputs, num_outputs
        self.num_hiddens, self.lr = tuple(num_hiddens), lr
        sizes = [num_inputs, *num_hiddens]
        self.hidden = _linear_stack(sizes, rngs)
        self.output = nnx.Linear(sizes[-1], num_outputs, rngs=rngs)

    def __call__(self, X):
        X = X.reshape((X.shape[0], -1))
        for layer in self.hidden:
            X = nnx.relu(layer(X))
        return self.output(X)


class NNXReusedMLP(nnx.Module):
    """``ReusedMLP`` in Flax NNX: flatten, ``self.reused_layer`` + ReLU, then new
    ``nnx.Linear`` + ReLU layers (``self.hidden``, one per entry of ``num_hiddens``) and a new
    ``self.output``.

    ``reused_layer`` is a layer of a trained model (an ``nnx.Linear``, or any module with
    ``out_features``). An NNX module holds its parameters, so putting that object into this
    model would *share* it: training this model would change the other one too. By default
    the layer is therefore copied (``nnx.clone``); ``share=True`` keeps the object itself.

    Filters: ``NNXReusedMLP.REUSED`` selects the reused layer's parameters and
    ``NNXReusedMLP.NEW`` every other parameter; ``nnx.Optimizer(model, tx, wrt=NNXReusedMLP.NEW)``
    trains the new layers and leaves the reused one frozen.
    """

    loss = staticmethod(Classifier.loss)
    accuracy = staticmethod(Classifier.accuracy)
    REUSED = nnx.All(nnx.Param, nnx.PathContains("reused_layer"))
    NEW = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("reused_layer")))

    def __init__(self, num_outputs: int, num_hiddens: Sequence[int], lr: float,
                 reused_layer: nnx.Module, *, rngs: nnx.Rngs, share: bool = False):
        self.num_outputs, self.num_hiddens, self.lr = num_outputs, tuple(num_hiddens), lr
        self.reused_layer = reused_layer if share else nnx.clone(reused_layer)
        sizes = [reused_layer.out_features, *num_hiddens]
        self.hidden = _linear_stack(sizes, rngs)
        self.output = nnx.Linear(sizes[-1], num_outputs, rngs=rngs)

    def __call__(self, X):
        X = nnx.relu(self.reused_layer(X.reshape((X.shape[0], -1))))
        for layer in self.hidden:
            X = nnx.relu(layer(X))
        return self.output(X)


def _dense_params(params) -> list[dict]:
    """The {"kernel", "bias"} leaves of a linen params tree, in creation (= forward) order."""
    tree = params.get("params", params)
    found = []

    def walk(node):
        if "kernel" in node and "bias" in node:
            found.append(node)
            return
        for value in node.values():
            if isinstance(value, dict) or hasattr(value, "items"):
                walk(value)

    walk(tree)
    return found


def save_safetensors(params, path):
    """Save a Flax params tree's Dense layers in the portable layout of ``d2l_utils.portable``;
    Flax kernels are (in, out), so they are transposed."""
    import numpy as np

    from d2l_utils.portable import save_layers

    return save_layers(path, [(np.asarray(d["kernel"]).T, np.asarray(d["bias"]))
                              for d in _dense_params(params)], "jax")


def load_safetensors(params, path, layers=None):
    """Return a copy of ``params`` with its Dense layers (or only its first ``layers``, from
    the file's first ``layers``) replaced by a portable MLP file's (JAX arrays are immutable:
    use the returned tree). Checked first (``CheckpointError``)."""
    from d2l_utils.portable import first_layers, load_layers

    def copy(node):  # new containers, keys in the same order (jax.tree.map would sort them)
        return {k: copy(v) for k, v in node.items()} if hasattr(node, "items") else node

    new = copy(params)
    dense = first_layers(_dense_params(new), layers, path)
    values, _ = load_layers(path, [tuple(d["kernel"].shape)[::-1] for d in dense], first=layers is not None)
    for d, (w, b) in zip(dense, values):
        d["kernel"] = jnp.asarray(w.T)
        d["bias"] = jnp.asarray(b)
    return new


__all__ += ["save_safetensors", "load_safetensors"]
