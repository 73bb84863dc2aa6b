"""The notebook tests can fail: a changed stored output makes strict nbval fail."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from conftest import FRAMEWORKS, ROOT


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_changed_output_fails(framework, notebook_env, tmp_path):
    source = ROOT / "notebooks" / framework / "read-write.ipynb"
    nb = nbformat.read(source, as_version=4)
    # Change the first stored text output (the first loaded tensor), as a stale notebook would.
    for cell in nb.cells:
        outputs = [o for o in cell.get("outputs", []) if "text/plain" in o.get("data", {})]
        if outputs:
            outputs[0]["data"]["text/plain"] += " (stale)"
            break
    else:
        pytest.fail(f"{source} has no text output to change")
    tampered = tmp_path / "read-write.ipynb"
    nbformat.write(nb, tampered)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "-x", "-p", "no:xdist", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(tampered)],
        cwd=tmp_path, env=notebook_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 failed" in proc.stdout
