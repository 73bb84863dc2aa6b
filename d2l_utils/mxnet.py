"""MXNet helpers for the workbook.

MXNet 1.9.1 (2022) is the last release of a retired project. It still uses ``numpy.bool``,
an alias NumPy 1.24 removed, so ``import mxnet`` fails on current NumPy 1.x with
``AttributeError: module 'numpy' has no attribute 'bool'``. This module is the one place
that restores the alias: import ``d2l_utils.mxnet`` before (or instead of) ``mxnet``.
``numpy.bool_`` is exactly the type the old alias named, so nothing else changes.
NumPy 2 breaks MXNet in further ways; the workbook pins NumPy below 2.
"""

import numpy as _numpy

if "bool" not in vars(_numpy):  # removed in NumPy 1.24 (NumPy 2 has a new numpy.bool)
    _numpy.bool = _numpy.bool_

import mxnet  # noqa: E402  (must come after the alias)
from mxnet import np, npx  # noqa: E402,F401

__all__ = ["mxnet", "np", "npx"]

# The exercises' models. d2l's MXNet module needs the alias above too.
from d2l import mxnet as _d2l  # noqa: E402
from mxnet.gluon import nn as _nn  # noqa: E402

Module = _d2l.Module
Classifier = _d2l.Classifier


class MulMLP(Classifier):
    """One ``Dense(h, activation="relu")`` per entry of ``num_hiddens``, then
    ``Dense(num_outputs)``, in a hybridizable ``nn.HybridSequential``. Gluon's ``Dense``
    flattens its input itself (``flatten=True``), so no Flatten layer is needed; input sizes
    are inferred on the first forward pass (deferred initialisation)."""

    def __init__(self, num_outputs, num_hiddens, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = _nn.HybridSequential()
        for h in num_hiddens:
            self.net.add(_nn.Dense(h, activation="relu"))
        self.net.add(_nn.Dense(num_outputs))
        self.net.initialize()


class ReusedMLP(Classifier):
    """``reused_layer`` (already trained blocks, e.g. ``MulMLP.net[:2]``), then new Dense + ReLU
    layers (one per entry of ``num_hiddens``) and a new output layer."""

    def __init__(self, num_outputs, num_hiddens, lr, reused_layer):
        super().__init__()
        self.save_hyperparameters()
        self.net = _nn.HybridSequential()
        self.net.add(reused_layer)
        fresh = [_nn.Dense(h, activation="relu") for h in num_hiddens] + [_nn.Dense(num_outputs)]
        for layer in fresh:
            self.net.add(layer)
            layer.initialize()


__all__ += ["Module", "Classifier", "MulMLP", "ReusedMLP"]
