"""Install the workbook's Jupyter kernel, "d2l-io", and its JupyterLab settings.

Every notebook names this kernel, so JupyterLab, nbval and nbgrader all run the same
interpreter with the same environment. The environment variables below silence framework
log lines at their source (they are written by C++ code straight to stderr, so they would
otherwise show up in cell outputs and differ between machines):

- TF_CPP_MIN_LOG_LEVEL=3: TensorFlow's C++ log messages below FATAL (e.g. CPU features).
- TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's oneDNN custom operations, which announce themselves on
  stderr at import and can change float results in the last bits with the thread count;
  without them every run gives the same numbers.
- JAX_PLATFORMS=cpu: JAX looks for no accelerator, and so does not warn that none is there.

With --sys-prefix (the default; what set-up runs) it also installs this environment's
JupyterLab settings, SETTINGS below, as {sys.prefix}/share/jupyter/lab/settings/overrides.json:
a user's own settings still win.

Usage: python -m d2l_utils.kernel [--sys-prefix | --user]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

NAME = "d2l-io"
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "JAX_PLATFORMS": "cpu"}
#: JupyterLab's defaults for this environment: a double-click opens a py:percent twin as the
#: notebook it is (jupytext's viewer), and Markdown (README.md, START.md) rendered; JupyterLab
#: fetches no news from the internet (the workbook uses no network).
SETTINGS = {
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"python": "Jupytext Notebook", "markdown": "Markdown Preview"},
    },
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sys-prefix", action="store_true", help="into this environment (default)")
    where.add_argument("--user", action="store_true", help="into the user's Jupyter folder")
    args = parser.parse_args()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": NAME,
        "language": "python",
        "env": ENV,
        "metadata": {"debugger": True},
    }
    with tempfile.TemporaryDirectory() as tmp:
        # The spec is copied with its folder's mode: TemporaryDirectory's 0700 would hide the
        # kernel from every other user of this environment (an instructor grading as themselves).
        os.chmod(tmp, 0o755)
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        dest = KernelSpecManager().install_kernel_spec(
            tmp, NAME, user=args.user, prefix=None if args.user else sys.prefix
        )
    print(f"installed kernel {NAME!r} in {dest}")
    if not args.user:
        settings = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "overrides.json").write_text(json.dumps(SETTINGS, indent=1) + "\n")
        print(f"installed JupyterLab settings in {settings / 'overrides.json'}")


if __name__ == "__main__":
    main()
