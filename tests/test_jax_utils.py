"""d2l_utils.jax: MulMLP and ReusedMLP (Flax linen) and their Flax NNX twins."""

import subprocess
import sys

import numpy as np
from helpers import Later

jax = Later("jax")
jnp = Later("jax.numpy")
optax = Later("optax")
ocp = Later("orbax.checkpoint")
nn = Later("flax.linen")
nnx = Later("flax.nnx")
d2l = Later("d2l_utils.jax")


def test_imports_no_tensorflow():
    code = "import sys, d2l_utils.jax; print('tensorflow' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_mulmlp_parameters_and_output():
    model = d2l.MulMLP(num_outputs=3, num_hiddens=(8, 4), lr=0.1)
    X = jnp.ones((5, 2, 10))
    params = model.init(jax.random.key(0), X)
    shapes = {k: v["kernel"].shape for k, v in params["params"].items()}
    assert shapes == {"Dense_0": (20, 8), "Dense_1": (8, 4), "Dense_2": (4, 3)}
    assert model.apply(params, X).shape == (5, 3)


def test_loss_and_accuracy():
    Y_hat = jnp.array([[5.0, 0, 0], [0, 5.0, 0]])
    for cls in (d2l.MulMLP, d2l.NNXMulMLP, d2l.NNXReusedMLP):
        assert float(cls.accuracy(Y_hat, jnp.array([0, 2]))) == 0.5
        assert float(cls.loss(Y_hat, jnp.array([0, 1]))) < 0.02


def test_reused_mlp_uses_copied_parameters():
    X = jnp.ones((4, 6))
    base = d2l.MulMLP(10, (16, 8), 0.1)
    saved = base.init(jax.random.key(0), X)
    new = d2l.ReusedMLP(3, (5,), 0.1, reused_layer=nn.Dense(16))
    params = new.init(jax.random.key(1), X)
    assert set(params["params"]) == {"reused_layer", "Dense_0", "Dense_1"}
    params["params"]["reused_layer"] = saved["params"]["Dense_0"]
    p = params["params"]
    h = nn.relu(X @ saved["params"]["Dense_0"]["kernel"] + saved["params"]["Dense_0"]["bias"])
    h = nn.relu(h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    reference = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    out = new.apply(params, X)
    assert out.shape == (4, 3) and jnp.allclose(out, reference, atol=1e-5)


# ------------------------------------------------------------------------------ Flax NNX

def _shapes(module_or_state, *filters):
    state = module_or_state if isinstance(module_or_state, nnx.State) else nnx.state(
        module_or_state, *filters)
    return jax.tree.map(jnp.shape, nnx.to_pure_dict(state))


def _reference(layers, X):
    """Flatten, then ReLU after every layer but the last: what both MLPs compute."""
    X = X.reshape((X.shape[0], -1))
    for i, layer in enumerate(layers):
        X = X @ layer.kernel[...] + layer.bias[...]
        X = X if i == len(layers) - 1 else jax.nn.relu(X)
    return X


def test_nnx_mulmlp_structure_and_output():
    model = d2l.NNXMulMLP(3, (8, 4), 0.1, num_inputs=20, rngs=nnx.Rngs(0))
    assert _shapes(model, nnx.Param) == {
        "hidden": {0: {"kernel": (20, 8), "bias": (8,)}, 1: {"kernel": (8, 4), "bias": (4,)}},
        "output": {"kernel": (4, 3), "bias": (3,)},
    }
    config = (model.num_inputs, model.num_outputs, model.num_hiddens, model.lr)
    assert config == (20, 3, (8, 4), 0.1)  # the architecture, kept as attributes
    X = jax.random.normal(jax.random.key(1), (5, 2, 10))
    out = model(X)
    assert out.shape == (5, 3)
    assert jnp.allclose(out, _reference([*model.hidden, model.output], X), atol=1e-5)
    # The same seed makes the same parameters; another seed other ones.
    same = d2l.NNXMulMLP(3, (8, 4), 0.1, num_inputs=20, rngs=nnx.Rngs(0))
    other = d2l.NNXMulMLP(3, (8, 4), 0.1, num_inputs=20, rngs=nnx.Rngs(1))
    assert jnp.array_equal(same(X), out) and not jnp.array_equal(other(X), out)


def test_nnx_reused_mlp_structure_and_output():
    base = d2l.NNXMulMLP(10, (16, 8), 0.1, num_inputs=6, rngs=nnx.Rngs(0))
    new = d2l.NNXReusedMLP(3, (5,), 0.1, base.hidden[0], rngs=nnx.Rngs(1))
    assert _shapes(new, nnx.Param) == {
        "reused_layer": {"kernel": (6, 16), "bias": (16,)},
        "hidden": {0: {"kernel": (16, 5), "bias": (5,)}},
        "output": {"kernel": (5, 3), "bias": (3,)},
    }
    X = jax.random.normal(jax.random.key(2), (4, 6))
    out = new(X)
    assert out.shape == (4, 3)
    assert jnp.allclose(out, _reference([base.hidden[0], *new.hidden, new.output], X), atol=1e-5)
    # The filters split the parameters into the reused layer and the new ones.
    assert set(_shapes(new, d2l.NNXReusedMLP.REUSED)) == {"reused_layer"}
    assert set(_shapes(new, d2l.NNXReusedMLP.NEW)) == {"hidden", "output"}


def _train(model, wrt, steps=3):
    X = jax.random.normal(jax.random.key(3), (16, 6))
    y = jnp.arange(16) % 3
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=wrt)
    for _ in range(steps):
        grads = nnx.grad(lambda m: model.loss(m(X), y), argnums=nnx.DiffState(0, wrt))(model)
        optimizer.update(model, grads)


def test_nnx_reuse_copies_parameters_unless_shared():
    base = d2l.NNXMulMLP(10, (16, 8), 0.1, num_inputs=6, rngs=nnx.Rngs(0))
    first = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(base.hidden[0])))
    copied = d2l.NNXReusedMLP(3, (5,), 0.1, base.hidden[0], rngs=nnx.Rngs(1))
    assert copied.reused_layer is not base.hidden[0]
    for name in ("kernel", "bias"):  # equal values, separate arrays
        assert np.array_equal(getattr(copied.reused_layer, name)[...], first[name])
    _train(copied, nnx.Param)  # everything trains, the reused copy too
    assert not np.array_equal(copied.reused_layer.kernel[...], first["kernel"])
    assert all(np.array_equal(getattr(base.hidden[0], n)[...], first[n]) for n in first), \
        "training the copy changed the model it was copied from"

    shared = d2l.NNXReusedMLP(3, (5,), 0.1, base.hidden[0], rngs=nnx.Rngs(1), share=True)
    assert shared.reused_layer is base.hidden[0]
    _train(shared, nnx.Param)
    assert not np.array_equal(base.hidden[0].kernel[...], first["kernel"]), \
        "a shared layer is one object: training the new model changes the old one"


def test_nnx_freezing_the_reused_layer():
    base = d2l.NNXMulMLP(10, (16, 8), 0.1, num_inputs=6, rngs=nnx.Rngs(0))
    model = d2l.NNXReusedMLP(3, (5,), 0.1, base.hidden[0], rngs=nnx.Rngs(1))
    before = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    _train(model, d2l.NNXReusedMLP.NEW)
    after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), before, after)
    assert same == {
        "reused_layer": {"kernel": True, "bias": True},
        "hidden": {0: {"kernel": False, "bias": False}},
        "output": {"kernel": False, "bias": False},
    }


def test_nnx_save_and_restore_into_an_abstract_model(tmp_path):
    def make():
        return d2l.NNXMulMLP(3, (8, 4), 0.1, num_inputs=20, rngs=nnx.Rngs(0))

    model = make()
    _, state = nnx.split(model)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "nnx", state)
    checkpointer.wait_until_finished()

    abstract = nnx.eval_shape(make)  # shapes and dtypes only: no arrays are made
    assert all(isinstance(a, jax.ShapeDtypeStruct) for a in jax.tree.leaves(nnx.state(abstract)))
    graphdef, abstract_state = nnx.split(abstract)
    restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "nnx", abstract_state))
    assert isinstance(restored, d2l.NNXMulMLP) and restored is not model
    X = jax.random.normal(jax.random.key(1), (5, 20))
    assert jnp.array_equal(restored(X), model(X))
