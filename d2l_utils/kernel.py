"""Install the workbook's Jupyter kernels, "d2l-io" and "d2l-io-mxnet", and its JupyterLab settings.

d2l-io runs this Python (PyTorch, TensorFlow, JAX); d2l-io-mxnet runs the interpreter of the
MXNet environment, given with --mxnet-python. Both are registered in one place (this
environment), so the JupyterLab, nbval and grader of this environment can start either.

Every notebook names one of them (the MXNet notebooks d2l-io-mxnet, the others d2l-io: see
KERNELS), so JupyterLab, nbval and the grader run it with the same interpreter and
environment. The environment variables below (both kernels have them) silence framework
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

Usage: python -m d2l_utils.kernel [--sys-prefix | --user] [--mxnet-python PATH]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from d2l_utils import FRAMEWORKS

NAME = "d2l-io"
MXNET = "d2l-io-mxnet"
#: The kernel each framework's notebooks name.
KERNELS = {fw: MXNET if fw == "mxnet" else NAME for fw in FRAMEWORKS}
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


def python(kernel: str) -> str:
    """The interpreter that `kernel` runs, as registered: where its environment is."""
    try:
        return KernelSpecManager().get_kernel_spec(kernel).argv[0]
    except NoSuchKernel:
        raise RuntimeError(f"the Jupyter kernel {kernel!r} is not installed: run `make setup` "
                           "(or see README, 'Using conda instead')") from None


def install(name: str, executable: str, user: bool) -> str:
    spec = {
        "argv": [executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "env": ENV,
        "metadata": {"debugger": True},
    }
    with tempfile.TemporaryDirectory() as tmp:
        # The spec is copied with its folder's mode: TemporaryDirectory's 0700 would hide the
        # kernel from every other user of this environment (an instructor grading as themselves).
        os.chmod(tmp, 0o755)
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        return KernelSpecManager().install_kernel_spec(
            tmp, name, user=user, prefix=None if user else sys.prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sys-prefix", action="store_true", help="into this environment (default)")
    where.add_argument("--user", action="store_true", help="into the user's Jupyter folder")
    parser.add_argument("--mxnet-python", metavar="PATH",
                        help="the Python of the MXNet environment (for the d2l-io-mxnet kernel)")
    args = parser.parse_args()
    print(f"installed kernel {NAME!r} in {install(NAME, sys.executable, args.user)}")
    if args.mxnet_python:
        # abspath, not resolve: a venv's python is a link, and the link is what selects the venv.
        mx = os.path.abspath(args.mxnet_python)
        if not os.access(mx, os.X_OK):
            raise SystemExit(f"--mxnet-python {args.mxnet_python}: not an executable")
        print(f"installed kernel {MXNET!r} in {install(MXNET, mx, args.user)}")
    if not args.user:
        settings = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "overrides.json").write_text(json.dumps(SETTINGS, indent=1) + "\n")
        print(f"installed JupyterLab settings in {settings / 'overrides.json'}")


if __name__ == "__main__":
    main()
