"""The portable MLP format: each framework round-trips its own file and every framework's file
loads into every other framework with the same outputs (each framework in its own process,
with its own environment's Python, importing only that framework)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import FRAMEWORK_MODULES, FRAMEWORKS, python_for

# Per framework: build a 20 -> 16 -> 8 -> 3 MLP with a given seed, as (setup, forward) code.
BUILD = {
    "pytorch": ("import torch\nfrom d2l_utils import torch as u\ntorch.manual_seed(SEED)\n"
                "m = u.MulMLP(3, [16, 8], 0.1)\nm(torch.zeros(1, 20))\n",
                "m(torch.from_numpy(x)).detach().numpy()", "u.save_safetensors(m, P)",
                "u.load_safetensors(m, P)"),
    "tensorflow": ("import keras\nfrom d2l_utils import tensorflow as u\nkeras.utils.set_random_seed(SEED)\n"
                   "m = u.MulMLP(3, [16, 8], 0.1)\nm(np.zeros((1, 20), np.float32))\n",
                   "m(x).numpy()", "u.save_safetensors(m, P)", "u.load_safetensors(m, P)"),
    "mxnet": ("from d2l_utils import mxnet as u\nu.npx.set_np()\nu.mxnet.random.seed(SEED)\n"
              "m = u.MulMLP(3, [16, 8], 0.1)\nm(u.np.zeros((1, 20)))\n",
              "m(u.np.array(x)).asnumpy()", "u.save_safetensors(m, P)", "u.load_safetensors(m, P)"),
    "jax": ("import jax\nfrom d2l_utils import jax as u\nmodel = u.MulMLP(3, (16, 8), 0.1)\n"
            "m = model.init(jax.random.key(SEED), np.zeros((1, 20), np.float32))\n",
            "np.asarray(model.apply(m, x))", "u.save_safetensors(m, P)", "m = u.load_safetensors(m, P)"),
}
HEAD = "import sys, json\nimport numpy as np\nfrom d2l_utils.checkpoint import CheckpointError\n"
X = np.random.default_rng(0).standard_normal((5, 20)).astype(np.float32)


def _run(fw, body, tmp_path, env, seed=0):
    """Run `body` in a fresh interpreter after `fw`'s set-up. It first imports the framework
    alone and keeps in BARE the framework modules that brought in (TensorFlow imports JAX when
    it is installed; see tests/test_walkthrough_imports.py)."""
    setup, forward, save, load = BUILD[fw]
    module = "d2l_utils.mxnet" if fw == "mxnet" else FRAMEWORK_MODULES[fw]
    bare = (f"import {module}\n"
            f"BARE = sorted(m for m in {sorted(FRAMEWORK_MODULES.values())!r} if m in sys.modules)\n")
    code = (HEAD + bare + setup.replace("SEED", str(seed))
            + f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
            + body.format(forward=forward, save=save, load=load))
    proc = subprocess.run([python_for(fw), "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _numpy_forward(layers, x):
    """The MLP in plain NumPy, in the file's (out, in) layout: the reference for every framework."""
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layouts_against_numpy_and_refusal(framework, tmp_path, notebook_env):
    """A file made with NumPy loads into the framework's model and gives NumPy's outputs; the
    framework's own file gives, in NumPy, the framework's outputs; a file for another
    architecture is refused and changes nothing; only the framework itself is imported."""
    from d2l_utils.portable import load_layers, save_layers

    rng = np.random.default_rng(3)
    layers = [(rng.standard_normal((o, i)).astype(np.float32), rng.standard_normal(o).astype(np.float32))
              for o, i in ((16, 20), (8, 16), (3, 8))]
    given, own, wrong = (tmp_path / n for n in ("numpy.safetensors", "own.safetensors", "wrong.safetensors"))
    save_layers(given, layers, "numpy")
    save_layers(wrong, layers[:1] + [(np.zeros((3, 16)), np.zeros(3))], "numpy")
    np.save(tmp_path / "x.npy", X)
    body = (f"P = {str(wrong)!r}\nbefore = {{forward}}\n"
            "try:\n    {load}\n    print('LOADED')\nexcept CheckpointError as e:\n    print(json.dumps(e.problem))\n"
            "print(np.array_equal(before, {forward}))\n"
            f"P = {str(own)!r}\n{{save}}\nnp.save({str(tmp_path / 'own.npy')!r}, {{forward}})\n"
            f"P = {str(given)!r}\n{{load}}\nnp.save({str(tmp_path / 'given.npy')!r}, {{forward}})\n"
            f"print(json.dumps(sorted(m for m in {sorted(FRAMEWORK_MODULES.values())!r} if m in sys.modules)))\n"
            "print(json.dumps(BARE))\n")
    out = _run(framework, body, tmp_path, notebook_env).strip().splitlines()
    problem, unchanged, modules, bare = json.loads(out[-4]), out[-3], json.loads(out[-2]), json.loads(out[-1])
    assert "missing tensors ['dense2.bias', 'dense2.weight']" in problem
    assert "dense1.weight has shape (3, 16), expected (8, 16)" in problem
    assert unchanged == "True"
    np.testing.assert_allclose(np.load(tmp_path / "given.npy"), _numpy_forward(layers, X), atol=1e-4, rtol=1e-5)
    own_layers, meta = load_layers(own, [(16, 20), (8, 16), (3, 8)])
    assert meta["framework"] == framework and meta["layers"] == "3"
    np.testing.assert_allclose(np.load(tmp_path / "own.npy"), _numpy_forward(own_layers, X), atol=1e-4, rtol=1e-5)
    assert modules == bare


@pytest.mark.slow  # a fresh Python importing PyTorch, TensorFlow and PyTorch's compiler: 10 s
def test_pytorch_compiler_after_tensorflow_in_one_process():
    """PyTorch, then d2l_utils.tensorflow, then PyTorch's compiler (torch.optim and
    torch.export import it on first use), as the portable-checkpoints notebook does: without
    d2l_utils.tensorflow loading the compiler first, LLVM aborts the process."""
    code = ("import d2l_utils.torch, d2l_utils.tensorflow, torch\n"
            "import torch._dynamo\n"
            "print('both loaded')\n")
    proc = subprocess.run([python_for("pytorch"), "-c", code], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and proc.stdout == "both loaded\n", proc.stderr[-2000:]


@pytest.mark.parametrize("fmt, loads", [(None, True), ("pt", True), ("d2l-io/mlp", True),
                                        ("d2l-io/cnn", False), ("tf", False)])
def test_a_file_without_this_workbooks_format_loads_when_it_fits(fmt, loads, tmp_path):
    """A safetensors file from elsewhere (PyTorch DCP's consolidated file has no metadata;
    Hugging Face's libraries write "format": "pt") loads when its names and shapes fit; a file
    that names another format is refused with one CheckpointError naming the file."""
    import warnings

    from safetensors.numpy import save_file

    from d2l_utils.checkpoint import CheckpointError, UncheckedCheckpointWarning
    from d2l_utils.portable import load_layers

    rng = np.random.default_rng(1)
    layers = [(rng.standard_normal((4, 3), np.float32), rng.standard_normal(4, np.float32))]
    path = tmp_path / "from-elsewhere.safetensors"
    save_file({"dense0.weight": layers[0][0], "dense0.bias": layers[0][1]}, str(path),
              metadata=None if fmt is None else {"format": fmt})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncheckedCheckpointWarning)
        if loads:
            (w, b), = load_layers(path, [(4, 3)])[0]
            assert np.array_equal(w, layers[0][0]) and np.array_equal(b, layers[0][1])
        else:
            with pytest.raises(CheckpointError, match=f"from-elsewhere.*format '{fmt}'"):
                load_layers(path, [(4, 3)])
