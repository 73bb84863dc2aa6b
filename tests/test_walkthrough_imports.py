"""Each walkthrough loads only its own framework, and the repository's own d2l_utils.

The .py twin of each walkthrough is run as a plain script in a fresh interpreter (the Python
of the kernel the notebook names), after a bare import of its framework; sys.modules is
inspected after each.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FRAMEWORK_MODULES, FRAMEWORKS, ROOT, python_for

PROBE = r"""
import importlib, json, runpy, sys
watched = sys.argv[3].split(",")
importlib.import_module(sys.argv[2])  # what a bare import of the framework loads by itself
bare = sorted(m for m in watched if m in sys.modules)
runpy.run_path(sys.argv[1], run_name="__main__")
import d2l_utils
loaded = sorted(m for m in watched if m in sys.modules)
print("PROBE" + json.dumps({"bare": bare, "loaded": loaded, "d2l_utils": d2l_utils.__file__}))
"""


@pytest.mark.slow  # runs each walkthrough whole, as the notebook tests do: not in `make check`
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_walkthrough_loads_only_its_framework(framework, notebook_env, tmp_path):
    script = ROOT / "notebooks" / framework / "read-write.py"
    watched = sorted(set(FRAMEWORK_MODULES.values()) | {"keras", "flax", "d2l"})
    own = FRAMEWORK_MODULES[framework]
    # What a bare `import <framework>` loads by itself is not the walkthrough's doing: in this
    # environment `import tensorflow` also imports keras, and jax too (tensorflow/lite/python/
    # util.py does `from jax import jit` whenever JAX is installed). The probe imports the
    # framework first, notes what came with it, then runs the walkthrough in the same process.
    bare_import = "d2l_utils.mxnet" if framework == "mxnet" else own  # MXNet needs its alias
    proc = subprocess.run(
        [python_for(framework), "-c", PROBE, str(script), bare_import, ",".join(watched)],
        cwd=script.parent, env=notebook_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("PROBE"))
    probe = json.loads(line[len("PROBE"):])

    family = {"jax": {"flax"}}.get(framework, set())  # Flax is JAX's model library
    extra = set(probe["loaded"]) - set(probe["bare"]) - family
    assert own in probe["loaded"]
    assert not extra, f"the {framework} walkthrough loaded {sorted(extra)} as well"
    assert "d2l" not in probe["loaded"], "the walkthroughs need nothing from the d2l package"
    assert probe["d2l_utils"] == str(ROOT / "d2l_utils" / "__init__.py")
    # Files went to the private scratch folder, none next to the notebook.
    assert any((tmp_path / "scratch" / framework).iterdir())
