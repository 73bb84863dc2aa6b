"""The exercises' MXNet models (see d2l_utils.mxnet, which re-exports them)."""

import d2l_utils._numpy_bool  # noqa: F401  (before mxnet and d2l load)
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



def _dense_layers(block) -> list:
    found = []

    def walk(b):
        # a block reached twice (ReusedMLP registers its reused block twice) counts once
        if isinstance(b, _nn.Dense) and not any(b is f for f in found):
            found.append(b)
        for child in b._children.values():
            walk(child() if callable(child) and not isinstance(child, _nn.Block) else child)

    walk(block)
    if any(0 in layer.weight.shape for layer in found):
        raise ValueError("the model has deferred shapes: run one batch through it first")
    return found


def save_safetensors(model, path):
    """Save the model's ``Dense`` layers (in order) in the portable layout of
    ``d2l_utils.portable`` (MXNet's weights are already (out, in))."""
    from d2l_utils.portable import save_layers

    return save_layers(path, [(l.weight.data().asnumpy(), l.bias.data().asnumpy())
                              for l in _dense_layers(model)], "mxnet")


def load_safetensors(model, path, layers=None):
    """Load a portable MLP file into the model's ``Dense`` layers (or only its first
    ``layers``, from the file's first ``layers``), checked first."""
    from mxnet import nd, util
    from mxnet import np as mnp

    from d2l_utils.portable import first_layers, load_layers

    array = mnp.array if util.is_np_array() else nd.array
    dense = first_layers(_dense_layers(model), layers, path)
    values, meta = load_layers(path, [tuple(l.weight.shape) for l in dense], first=layers is not None)
    for l, (w, b) in zip(dense, values):
        l.weight.set_data(array(w))
        l.bias.set_data(array(b))
    return meta
