"""PyTorch helpers for the workbook's exercises: MulMLP and ReusedMLP.

The models follow the book's ``d2l.Classifier`` (loss, accuracy, SGD optimizer). This module
also offers the d2l names the exercise code uses (``Classifier``, ``Module``), so code written
as ``import d2l`` against a local helper runs with its import line changed to
``from d2l_utils import torch as d2l``.
"""

from __future__ import annotations

import torch
from torch import nn

from d2l_utils._book import import_book

_d2l = import_book("d2l.torch")  # without torchvision and the plotting libraries

Module = _d2l.Module
Classifier = _d2l.Classifier

__all__ = ["Module", "Classifier", "MulMLP", "ReusedMLP"]


class MulMLP(Classifier):
    """An MLP with one hidden layer (and ReLU) per entry of ``num_hiddens``.

    ``net`` is ``Sequential(Flatten, LazyLinear(h0), ReLU, ..., LazyLinear(num_outputs))``:
    the input is flattened, and lazy layers take their input size from the first batch.
    """

    def __init__(self, num_outputs, num_hiddens, lr):
        super().__init__()
        self.save_hyperparameters()
        layers = [nn.Flatten()]
        for num in num_hiddens:
            layers.append(nn.LazyLinear(num))
            layers.append(nn.ReLU())
        layers.append(nn.LazyLinear(num_outputs))
        self.net = nn.Sequential(*layers)


class ReusedMLP(Classifier):
    """``reused_layer`` (already trained layers, e.g. ``MulMLP.net[:2]``), a ReLU, then new
    hidden layers (one per entry of ``num_hiddens``) and a new output layer."""

    def __init__(self, num_outputs, num_hiddens, lr, reused_layer):
        super().__init__()
        self.save_hyperparameters()
        layers = [reused_layer, nn.ReLU()]
        for num in num_hiddens:
            layers.append(nn.LazyLinear(num))
            layers.append(nn.ReLU())
        layers.append(nn.LazyLinear(num_outputs))
        self.net = nn.Sequential(*layers)


def _dense_layers(model) -> list:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if any(isinstance(m.weight, nn.parameter.UninitializedParameter) for m in layers):
        raise ValueError("the model has lazy layers without shapes yet: run one batch through it first")
    return layers


def save_safetensors(model, path):
    """Save the model's ``nn.Linear`` layers (in registration order) in the portable layout of
    ``d2l_utils.portable``."""
    from d2l_utils.portable import save_layers

    return save_layers(path, [(m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
                              for m in _dense_layers(model)], "pytorch")


def load_safetensors(model, path, layers=None):
    """Load a portable MLP file into the model's ``nn.Linear`` layers (or only its first
    ``layers``, from the file's first ``layers``); names, shapes and dtypes are checked first
    (``CheckpointError``), so nothing changes on a mismatch."""
    from d2l_utils.portable import first_layers, load_layers

    dense = first_layers(_dense_layers(model), layers, path)
    values, meta = load_layers(path, [tuple(m.weight.shape) for m in dense], first=layers is not None)
    with torch.no_grad():
        for m, (w, b) in zip(dense, values):
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
    return meta


__all__ += ["save_safetensors", "load_safetensors"]
