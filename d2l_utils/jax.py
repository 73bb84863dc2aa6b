"""JAX / Flax helpers for the workbook's exercises: MulMLP and ReusedMLP as Flax linen modules.

The book's ``d2l.jax`` module imports TensorFlow and TensorFlow Datasets (for its data
loaders), which take seconds and hundreds of MB to import. The exercises need only its
``Classifier`` behaviour (cross-entropy loss and accuracy), so this module provides a small
``Classifier`` with the same ``loss``/``accuracy`` methods and imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import optax
from flax import linen as nn

__all__ = ["Classifier", "MulMLP", "ReusedMLP"]


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
