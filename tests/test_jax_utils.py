"""d2l_utils.jax: MulMLP and ReusedMLP (Flax linen)."""

import subprocess
import sys

import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import linen as nn  # noqa: E402

from d2l_utils import jax as d2l  # noqa: E402


def test_imports_no_tensorflow():
    code = "import sys, d2l_utils.jax; print('tensorflow' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_mulmlp_parameters_and_output():
    model = d2l.MulMLP(num_outputs=3, num_hiddens=(8, 4), lr=0.1)
    X = jnp.ones((5, 2, 10))
    params = model.init(jax.random.PRNGKey(0), X)
    shapes = {k: v["kernel"].shape for k, v in params["params"].items()}
    assert shapes == {"Dense_0": (20, 8), "Dense_1": (8, 4), "Dense_2": (4, 3)}
    assert model.apply(params, X).shape == (5, 3)


def test_loss_and_accuracy():
    Y_hat = jnp.array([[5.0, 0, 0], [0, 5.0, 0]])
    assert float(d2l.MulMLP.accuracy(Y_hat, jnp.array([0, 2]))) == 0.5
    assert float(d2l.MulMLP.loss(Y_hat, jnp.array([0, 1]))) < 0.02


def test_reused_mlp_uses_copied_parameters():
    X = jnp.ones((4, 6))
    base = d2l.MulMLP(10, (16, 8), 0.1)
    saved = base.init(jax.random.PRNGKey(0), X)
    new = d2l.ReusedMLP(3, (5,), 0.1, reused_layer=nn.Dense(16))
    params = new.init(jax.random.PRNGKey(1), X)
    assert set(params["params"]) == {"reused_layer", "Dense_0", "Dense_1"}
    params["params"]["reused_layer"] = saved["params"]["Dense_0"]
    p = params["params"]
    h = nn.relu(X @ saved["params"]["Dense_0"]["kernel"] + saved["params"]["Dense_0"]["bias"])
    h = nn.relu(h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    reference = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    out = new.apply(params, X)
    assert out.shape == (4, 3) and jnp.allclose(out, reference, atol=1e-5)
