"""d2l_utils.torch: MulMLP and ReusedMLP."""

from helpers import Later

torch = Later("torch")
d2l = Later("d2l_utils.torch")


def test_mulmlp_structure_and_output():
    torch.manual_seed(0)
    model = d2l.MulMLP(num_outputs=3, num_hiddens=[8, 4], lr=0.1)
    Y = model(torch.randn(5, 2, 10))  # flattened to (5, 20)
    assert Y.shape == (5, 3)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [m.out_features for m in model.net if isinstance(m, torch.nn.Linear)] == [8, 4, 3]
    assert model.net[1].in_features == 20
    assert isinstance(model, d2l.Classifier) and model.lr == 0.1


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    model = d2l.MulMLP(3, [8], 0.1)
    X = torch.randn(4, 6)
    model(X)
    torch.save(model.state_dict(), tmp_path / "mlp.params")
    clone = d2l.MulMLP(3, [8], 0.1)
    clone(X)  # materialise the lazy layers before loading
    clone.load_state_dict(torch.load(tmp_path / "mlp.params"))
    assert torch.equal(clone(X), model(X))


def test_reused_mlp_shares_the_given_layers():
    torch.manual_seed(0)
    base = d2l.MulMLP(10, [16, 8], 0.1)
    X = torch.randn(4, 6)
    base(X)
    reused = base.net[:2]
    new = d2l.ReusedMLP(3, [5], 0.1, reused)
    assert new(X).shape == (4, 3)
    assert new.net[0] is reused
    assert torch.equal(new.net[0][1].weight, base.net[1].weight)
    assert [m.out_features for m in new.net[2:] if isinstance(m, torch.nn.Linear)] == [5, 3]


def test_classifier_loss_and_accuracy():
    model = d2l.MulMLP(3, [4], 0.1)
    Y_hat = torch.tensor([[5.0, 0, 0], [0, 5.0, 0]])
    Y = torch.tensor([0, 2])
    assert float(model.accuracy(Y_hat, Y)) == 0.5
    assert float(model.loss(Y_hat, torch.tensor([0, 1]))) < 0.02


def test_the_book_module_comes_without_torchvision_and_plotting():
    """d2l_utils.torch imports the book's d2l.torch without torchvision, pandas, matplotlib,
    SciPy, requests or Pillow (only the book's datasets and plots use them, and importing them
    cost more than torch itself); the book's functions still reach the real modules, and
    importing one afterwards gets the real module."""
    import subprocess
    import sys

    deferred = "('torchvision', 'torch._dynamo', 'pandas', 'matplotlib', 'scipy', 'requests', 'PIL')"
    code = (
        "import sys, types\n"
        "import numpy as np\n"
        "import d2l_utils.torch\n"
        f"print('after d2l_utils.torch:', sorted(m for m in {deferred} if m in sys.modules))\n"
        "from d2l import torch as book\n"
        "print('book reaches:', book.torchvision.datasets.FashionMNIST.__module__.split('.')[0],"
        " book.pd.DataFrame.__module__.split('.')[0], book.plt.figure.__module__,"
        " book.distance_matrix(np.zeros((1, 2)), np.ones((1, 2))).round(3).tolist())\n"
        "import torchvision, pandas\n"
        "print('import torchvision:', type(torchvision) is types.ModuleType, hasattr(torchvision, 'ops'))\n"
        "print('import pandas:', type(pandas) is types.ModuleType, hasattr(pandas, 'DataFrame'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "after d2l_utils.torch: []",
        "book reaches: torchvision pandas matplotlib.pyplot [[1.414]]",
        "import torchvision: True True", "import pandas: True True"]
