"""The book's framework modules (``d2l.torch``, ``d2l.tensorflow``), imported without the
libraries that only their datasets, plots and downloads use.

The book's modules import torchvision, pandas, requests, matplotlib, Pillow and SciPy at their
top, but use them only inside functions the workbooks never call (FashionMNIST and other
datasets, ``d2l.plot``, ``d2l.download``). Those imports cost more than the book's classes the
workbooks use (``Module``, ``Classifier``): ``import d2l_utils.torch`` took 0.65 CPU-s on top
of ``import torch`` with them, and every kernel that grades a submission pays it.

While the book's module is imported, each of those modules that is not imported yet is a
stand-in; afterwards the stand-ins leave ``sys.modules``, and the first attribute the book's
code reads from one imports the real module and reads it there. ``import pandas`` anywhere
else gets the real module, as before.
"""

from __future__ import annotations

import importlib
import sys
import types

DEFERRED = ("torchvision", "torchvision.transforms", "pandas", "requests", "IPython",
            "IPython.display", "matplotlib", "matplotlib.pyplot", "matplotlib_inline",
            "matplotlib_inline.backend_inline", "PIL", "PIL.Image", "scipy", "scipy.spatial")
"""Modules the book's modules import at their top and use only inside functions."""


class _OnFirstUse(types.ModuleType):
    """Stands for a module in sys.modules while the book's module is imported; afterwards each
    attribute read imports the real module and reads it there."""

    def __getattr__(self, attr):
        if sys.modules.get(self.__name__) is self:  # still standing in: nothing to forward to
            raise AttributeError(f"{self.__name__}.{attr} (not imported yet)")
        return getattr(importlib.import_module(self.__name__), attr)


def _distance_matrix(*args, **kwargs):
    """``scipy.spatial.distance_matrix``, imported when first called (the book imports the
    function itself, not its module)."""
    from scipy.spatial import distance_matrix

    return distance_matrix(*args, **kwargs)


def import_book(name: str) -> types.ModuleType:
    """The book's module `name` (``"d2l.torch"``), imported with the DEFERRED modules that are
    not imported yet standing in."""
    if name in sys.modules:
        return sys.modules[name]
    stand_ins = {m: _OnFirstUse(m) for m in DEFERRED if m not in sys.modules}
    for m, module in stand_ins.items():
        parent, _, child = m.rpartition(".")
        if parent in stand_ins:
            setattr(stand_ins[parent], child, module)
    if "scipy.spatial" in stand_ins:
        stand_ins["scipy.spatial"].distance_matrix = _distance_matrix
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module(name)
    finally:
        for m, module in stand_ins.items():
            if sys.modules.get(m) is module:
                del sys.modules[m]
