"""Unit tests for the d2l_utils package itself."""

from __future__ import annotations

import subprocess
import sys

import d2l_utils
from conftest import FRAMEWORK_MODULES, ROOT, python_for


def test_is_the_repository_copy():
    assert d2l_utils.__file__ == str(ROOT / "d2l_utils" / "__init__.py")


def test_package_imports_no_framework():
    code = (
        "import sys, d2l_utils; "
        f"print(sorted(m for m in {sorted(FRAMEWORK_MODULES.values())!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scratch_dir_default_is_ignored_folder(monkeypatch):
    monkeypatch.delenv("D2L_SCRATCH", raising=False)
    path = d2l_utils.scratch_dir("unit-test")
    assert path == ROOT / "scratch" / "unit-test" and path.is_dir()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path / "x-file")], cwd=ROOT)
    assert ignored.returncode == 0, "scratch/ must be git-ignored"
    path.rmdir()


def test_scratch_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("D2L_SCRATCH", str(tmp_path))
    assert d2l_utils.scratch_dir("a", "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def test_mxnet_module_restores_numpy_bool():
    """In the MXNet environment (NumPy 1.26, which has no numpy.bool) the alias comes back."""
    code = ("import numpy; print(numpy.__version__, hasattr(numpy, 'bool')); import d2l_utils.mxnet as m; "
            "print(numpy.bool is numpy.bool_, m.np.arange(3).shape)")
    out = subprocess.run([python_for("mxnet"), "-c", code], capture_output=True, text=True, check=True)
    version, before, same, shape = out.stdout.split()
    assert version.startswith("1.") and before == "False"
    assert (same, shape) == ("True", "(3,)")


def test_scratch_dir_clean_empties_only_that_folder(tmp_path, monkeypatch):
    import d2l_utils

    monkeypatch.setenv("D2L_SCRATCH", str(tmp_path))
    keep = d2l_utils.scratch_dir("other") / "keep.txt"
    keep.write_text("x")
    old = d2l_utils.scratch_dir("fw", "exercises") / "old.npy"
    old.write_text("x")
    assert d2l_utils.scratch_dir("fw", "exercises").joinpath("old.npy").exists()
    fresh = d2l_utils.scratch_dir("fw", "exercises", clean=True)
    assert fresh.is_dir() and not any(fresh.iterdir())
    assert keep.exists()


def test_make_classification_is_seeded():
    import numpy as np

    import d2l_utils

    X, y = d2l_utils.make_classification(64, 5, 3, seed=1)
    X2, y2 = d2l_utils.make_classification(64, 5, 3, seed=1)
    assert X.shape == (64, 5) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert set(np.unique(y)) <= {0, 1, 2}
    assert not np.array_equal(X, d2l_utils.make_classification(64, 5, 3, seed=2)[0])
