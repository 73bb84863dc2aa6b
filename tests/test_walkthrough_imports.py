"""Each walkthrough loads only its own framework, and the repository's own d2l_utils.

The .py twin of each walkthrough is run as a plain script in a fresh interpreter (the same
Python as the notebook kernel), then sys.modules is inspected.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FRAMEWORK_MODULES, FRAMEWORKS, ROOT

PROBE = r"""
import json, runpy, sys
runpy.run_path(sys.argv[1], run_name="__main__")
import d2l_utils
loaded = sorted(m for m in sys.argv[2].split(",") if m in sys.modules)
print("PROBE" + json.dumps({"loaded": loaded, "d2l_utils": d2l_utils.__file__}))
"""


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_walkthrough_loads_only_its_framework(framework, notebook_env, tmp_path):
    script = ROOT / "notebooks" / framework / "read-write.py"
    watched = sorted(set(FRAMEWORK_MODULES.values()) | {"keras", "flax", "d2l"})
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(script), ",".join(watched)],
        cwd=script.parent, env=notebook_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("PROBE"))
    probe = json.loads(line[len("PROBE"):])

    own = FRAMEWORK_MODULES[framework]
    # What a bare `import <framework>` loads by itself is not the walkthrough's doing: in this
    # environment `import tensorflow` also imports keras, and jax too (tensorflow/lite/python/
    # util.py does `from jax import jit` whenever JAX is installed).
    bare_import = "d2l_utils.mxnet" if framework == "mxnet" else own  # MXNet needs its alias
    bare = subprocess.run(
        [sys.executable, "-c", f"import sys, {bare_import}; print(','.join(m for m in {watched!r} if m in sys.modules))"],
        env=notebook_env, capture_output=True, text=True, check=True,
    ).stdout.strip().split(",")
    family = {"jax": {"flax"}}.get(framework, set())  # Flax is JAX's model library
    extra = set(probe["loaded"]) - set(bare) - family
    assert own in probe["loaded"]
    assert not extra, f"the {framework} walkthrough loaded {sorted(extra)} as well"
    assert "d2l" not in probe["loaded"], "the walkthroughs need nothing from the d2l package"
    assert probe["d2l_utils"] == str(ROOT / "d2l_utils" / "__init__.py")
    # Files went to the private scratch folder, none next to the notebook.
    assert any((tmp_path / "scratch" / framework).iterdir())
