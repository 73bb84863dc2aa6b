"""d2l_utils.tensorflow: MulMLP, ReusedMLP and the Keras 3 fix of d2l's Classifier."""

import numpy as np
import pytest
from helpers import Later

tf = Later("tensorflow")
keras = Later("keras")
book = Later("d2l.tensorflow")
d2l = Later("d2l_utils.tensorflow")


@pytest.fixture(autouse=True, scope="module")
def _tensorflow_as_the_workbook_loads_it():
    """Through d2l_utils.tensorflow, first: where this worker has PyTorch loaded, it loads
    PyTorch's compiler before TensorFlow (see its docstring)."""
    import d2l_utils.tensorflow  # noqa: F401


def test_book_classifier_loss_is_broken_on_keras3_and_ours_works():
    class BookMLP(book.Classifier):
        def __init__(self):
            super().__init__()
            self.net = keras.Sequential([keras.layers.Dense(3)])

    Y_hat, Y = tf.constant([[5.0, 0, 0], [0, 5.0, 0]]), tf.constant([0, 1])
    with pytest.raises(TypeError, match="'NoneType' object is not callable"):
        BookMLP().loss(Y_hat, Y)
    model = d2l.MulMLP(3, [4], 0.1)
    assert float(model.loss(Y_hat, Y)) < 0.02
    assert float(model.accuracy(Y_hat, tf.constant([0, 2]))) == 0.5
    assert model.keras_loss is None  # what Keras assigned is kept aside


def test_training_step_uses_the_loss():
    keras.utils.set_random_seed(0)
    model = d2l.MulMLP(3, [8], 0.1)
    X, Y = tf.random.normal((6, 4)), tf.constant([0, 1, 2, 0, 1, 2])
    model.plot = lambda *args, **kwargs: None  # d2l's progress board is not needed here
    assert float(model.training_step((X, Y))) > 0


def test_mulmlp_structure():
    keras.utils.set_random_seed(0)
    model = d2l.MulMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1)
    assert model(tf.random.normal((5, 2, 10))).shape == (5, 3)
    dense = [l for l in model.net.layers if isinstance(l, keras.layers.Dense)]
    assert [l.units for l in dense] == [8, 4, 3]
    assert dense[0].kernel.shape == (20, 8)
    assert isinstance(model.net.layers[0], keras.layers.Flatten)


def test_weights_round_trip_and_reuse(tmp_path):
    keras.utils.set_random_seed(0)
    X = tf.random.normal((4, 6))
    model = d2l.MulMLP(3, [8], 0.1)
    model(X)
    model.save_weights(tmp_path / "mlp.weights.h5")
    clone = d2l.MulMLP(3, [8], 0.1)
    clone(X)
    clone.load_weights(tmp_path / "mlp.weights.h5")
    assert np.array_equal(clone(X).numpy(), model(X).numpy())
    new = d2l.ReusedMLP(2, [5], 0.1, clone.net.layers[:2])
    assert new(X).shape == (4, 2)
    assert new.net.layers[1] is clone.net.layers[1]
