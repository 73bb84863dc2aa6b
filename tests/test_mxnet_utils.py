"""d2l_utils.mxnet: MulMLP and ReusedMLP (Gluon)."""

import pytest

from d2l_utils import mxnet as d2l  # restores numpy.bool before mxnet loads

np, npx = d2l.np, d2l.npx
npx.set_np()


def test_mulmlp_structure_and_output():
    d2l.mxnet.random.seed(0)
    model = d2l.MulMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1)
    Y = model(np.random.normal(size=(5, 2, 10)))  # Dense flattens (5, 2, 10) to (5, 20)
    assert Y.shape == (5, 3)
    assert [layer._units for layer in model.net] == [8, 4, 3]
    assert model.net[0].weight.shape == (8, 20)
    assert isinstance(model, d2l.Classifier) and model.lr == 0.1


def test_parameters_round_trip_and_reuse(tmp_path):
    d2l.mxnet.random.seed(0)
    X = np.random.normal(size=(4, 6))
    model = d2l.MulMLP(3, [8], 0.1)
    model(X)
    model.save_parameters(str(tmp_path / "mlp.params"))
    clone = d2l.MulMLP(3, [8], 0.1)
    clone.load_parameters(str(tmp_path / "mlp.params"))
    assert (clone(X) == model(X)).all()
    new = d2l.ReusedMLP(2, [5], 0.1, clone.net[:2])
    assert new(X).shape == (4, 2)
    assert (new.net[0][0].weight.data() == model.net[0].weight.data()).all()


def test_loss_and_accuracy():
    model = d2l.MulMLP(3, [4], 0.1)
    Y_hat = np.array([[5.0, 0, 0], [0, 5.0, 0]])
    assert float(model.accuracy(Y_hat, np.array([0, 2]))) == 0.5
    assert float(model.loss(Y_hat, np.array([0, 1]))) < 0.02
