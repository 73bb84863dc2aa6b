"""d2l_utils.mxnet: MulMLP and ReusedMLP (Gluon), run in the MXNet environment (MXNet cannot be
imported in this one: it needs NumPy 1.x). Each test is one script; a failed assert fails it
with the script's traceback."""

import subprocess

from conftest import python_for

HEAD = """
from d2l_utils import mxnet as d2l  # restores numpy.bool before mxnet loads
np, npx = d2l.np, d2l.npx
npx.set_np()
"""


def _run(body: str, tmp_path) -> None:
    proc = subprocess.run([python_for("mxnet"), "-c", HEAD + body], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK"), proc.stdout[-2000:]


def test_mulmlp_structure_and_output(tmp_path):
    _run("""
d2l.mxnet.random.seed(0)
model = d2l.MulMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1)
Y = model(np.random.normal(size=(5, 2, 10)))  # Dense flattens (5, 2, 10) to (5, 20)
assert Y.shape == (5, 3), Y.shape
assert [layer._units for layer in model.net] == [8, 4, 3]
assert model.net[0].weight.shape == (8, 20)
assert isinstance(model, d2l.Classifier) and model.lr == 0.1
print("OK")
""", tmp_path)


def test_parameters_round_trip_reuse_and_metrics(tmp_path):
    _run("""
d2l.mxnet.random.seed(0)
X = np.random.normal(size=(4, 6))
model = d2l.MulMLP(3, [8], 0.1)
model(X)
model.save_parameters("mlp.params")
clone = d2l.MulMLP(3, [8], 0.1)
clone.load_parameters("mlp.params")
assert (clone(X) == model(X)).all()
new = d2l.ReusedMLP(2, [5], 0.1, clone.net[:2])
assert new(X).shape == (4, 2)
assert (new.net[0][0].weight.data() == model.net[0].weight.data()).all()
m = d2l.MulMLP(3, [4], 0.1)
Y_hat = np.array([[5.0, 0, 0], [0, 5.0, 0]])
assert float(m.accuracy(Y_hat, np.array([0, 2]))) == 0.5
assert float(m.loss(Y_hat, np.array([0, 1]))) < 0.02
print("OK")
""", tmp_path)


def test_a_failing_check_fails(tmp_path):
    """The harness itself: a false assert in the MXNet environment is a failure here."""
    import pytest

    with pytest.raises(AssertionError, match="deliberately"):
        _run("assert False, 'deliberately'\nprint('OK')", tmp_path)
