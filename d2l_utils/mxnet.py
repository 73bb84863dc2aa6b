"""MXNet helpers for the workbook.

MXNet 1.9.1 (2022) is the last release of a retired project. It still uses ``numpy.bool``,
an alias NumPy 1.24 removed, so ``import mxnet`` fails on current NumPy 1.x with
``AttributeError: module 'numpy' has no attribute 'bool'``. This module restores the alias
(through ``d2l_utils._numpy_bool``): import ``d2l_utils.mxnet`` before (or instead of)
``mxnet``. ``numpy.bool_`` is exactly the type the old alias named, so nothing else changes.
NumPy 2 breaks MXNet in further ways; the workbook pins NumPy below 2.
"""

import d2l_utils._numpy_bool  # noqa: F401  (before mxnet)

import mxnet  # noqa: E402  (must come after the alias)
from mxnet import np, npx  # noqa: E402,F401

__all__ = ["mxnet", "np", "npx"]

# The exercises' models need the d2l package, which the walkthrough does not: they live in
# d2l_utils._mxnet_models and load on first use (d2l_utils.mxnet.MulMLP, ...).
_MODELS = ("Module", "Classifier", "MulMLP", "ReusedMLP", "save_safetensors", "load_safetensors")
__all__ += list(_MODELS)


def __getattr__(name):
    if name in _MODELS:
        from d2l_utils import _mxnet_models

        return getattr(_mxnet_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
