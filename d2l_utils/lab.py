"""Open the workbook in JupyterLab: ``make lab`` runs ``python -m d2l_utils.lab``.

    python -m d2l_utils.lab [--instructor] [JUPYTER LAB OPTIONS...]

JupyterLab opens on ``START.md`` (rendered), offering only the workbook's two kernels, and:

- **Students work on copies.** The exercise workbooks ``notebooks/<framework>/exercises.*``
  are copied once to ``work/<framework>/`` (which git ignores; an existing copy is never
  overwritten), and the start page links to the copies. The originals are read-only in
  JupyterLab: this contents manager refuses to save them, so no autosave can write a
  student's work into them.
- **Saving keeps git clean.** Notebooks are saved by jupytext's contents manager (the
  ``.ipynb`` and its py:percent twin together); ``python -m d2l_utils.lab --canonical`` writes
  committed notebooks in exactly the form that saving gives, so opening and saving an
  unchanged notebook changes no byte.
- **Two audiences.** Students do not see nbgrader's authoring tools (menu, Create Assignment
  sidebar, Validate button). ``--instructor`` (``make lab-instructor``) shows them.

The environment-wide JupyterLab settings (``.py`` twins open as notebooks, Markdown opens
rendered, no news fetched from the internet) are installed with the kernel, by
``python -m d2l_utils.kernel``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from d2l_utils import FRAMEWORKS
from d2l_utils.kernel import KERNELS

START = "START.md"
#: The workbooks students work on copies of, relative to the folder JupyterLab serves.
WORKBOOKS = {f"notebooks/{fw}/exercises.{ext}": f"work/{fw}/exercises.{ext}"
             for fw in FRAMEWORKS for ext in ("ipynb", "py")}
#: nbgrader's JupyterLab extension and server extensions: instructors only.
NBGRADER_LAB = "@jupyter/nbgrader"
NBGRADER_SERVER = ["nbgrader.server_extensions.formgrader",
                   "nbgrader.server_extensions.validate_assignment",
                   "nbgrader.server_extensions.assignment_list",
                   "nbgrader.server_extensions.course_list"]


@functools.cache
def _jupytext_config():
    """The project's [tool.jupytext] settings (pyproject.toml), as contents-manager traits."""
    import tomllib

    from d2l_utils import REPO_ROOT

    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["jupytext"]


def _contents_manager_class():
    import jupytext
    from tornado import web

    base = jupytext.AsyncTextFileContentsManager

    class ContentsManager(base):
        """jupytext's contents manager, with the repository's workbooks read-only."""

        def _protected(self, path: str) -> bool:
            return path.strip("/") in WORKBOOKS

        async def get(self, path, content=True, type=None, format=None, **kw):
            model = await super().get(path, content=content, type=type, format=format, **kw)
            if self._protected(path):
                model["writable"] = False
            return model

        async def save(self, model, path=""):
            if self._protected(path):
                raise web.HTTPError(
                    403, f"{path} is the original workbook and is not saved: work in your copy, "
                    f"{WORKBOOKS[path.strip('/')]} (the start page links to it)")
            return await super().save(model, path)

    return ContentsManager


def contents_manager(root: Path | str):
    """A (synchronous) jupytext contents manager over `root`, configured as pyproject.toml
    configures the project, wherever `root` is (a temporary folder has no pyproject.toml)."""
    import jupytext

    cm = jupytext.TextFileContentsManager(root_dir=str(root), log=_QUIET)
    for key, value in _jupytext_config().items():
        setattr(cm, key, value)
    return cm


# The contents manager narrates every save ("Saving exercises.ipynb", a warning that the twin
# has no metadata, which is the project's choice). Outside a server nobody reads that, and the
# root logger's handlers may belong to someone else (TensorFlow installs one on the stream
# sys.stderr was when it loaded): keep it to itself.
_QUIET = logging.getLogger("d2l_utils.lab.contents")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def canonical(paths: list[Path]) -> None:
    """Write each notebook (.ipynb path) and its twin exactly as saving it in JupyterLab would.
    The .ipynb decides: its twin is written from it, then the pair is opened and saved once
    more (jupytext recomputes the blank lines it records between cells from the twin)."""
    import nbformat

    with tempfile.TemporaryDirectory() as checkpoints:  # Save's backup copy: not kept
        for path in paths:
            path = Path(path).resolve()
            nb = nbformat.read(path, as_version=4)
            cm = contents_manager(path.parent)
            cm.checkpoints.checkpoint_dir = checkpoints
            cm.save({"type": "notebook", "format": "json", "content": nb}, path.name)
            cm.save(cm.get(path.name, content=True, type="notebook"), path.name)


def make_copies(root: Path) -> list[Path]:
    """Copy each workbook to work/<framework>/ unless a copy is already there."""
    made = []
    for src, dst in WORKBOOKS.items():
        if (root / src).exists() and not (root / dst).exists():
            (root / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / src, root / dst)
            made.append(root / dst)
    return made


def server_config(instructor: bool) -> dict:
    config = {
        "ServerApp": {
            "contents_manager_class": "d2l_utils.lab.ContentsManager",
            "jpserver_extensions": {} if instructor else {name: False for name in NBGRADER_SERVER},
        },
        # The kernels the notebooks name (not also the environment's "Python 3").
        "KernelSpecManager": {"allowed_kernelspecs": sorted(set(KERNELS.values()))},
    }
    return config


def page_config(instructor: bool) -> dict:
    return {"disabledExtensions": {} if instructor else {NBGRADER_LAB: True}}


def lab_command(root: Path, extra: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI machines that run as root
    # The URL JupyterLab prints (and a browser opens) shows the start page.
    return argv + [f"--LabApp.default_url=/lab/tree/{START}"] + extra


def write_config(config_dir: Path, instructor: bool) -> dict[str, str]:
    """Write the server and page configuration into config_dir; return the environment
    variables that make JupyterLab read them (it reads jupyter_server_config.json and
    labconfig/page_config.json from every folder of the config path, this one first)."""
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server_config(instructor)))
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(page_config(instructor)))
    path = os.environ.get("JUPYTER_CONFIG_PATH")
    return {"JUPYTER_CONFIG_PATH": os.pathsep.join(filter(None, [str(config_dir), path]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructor", action="store_true",
                        help="show nbgrader's authoring tools (Create Assignment, Validate, ...)")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="the folder to serve (default: the current folder)")
    parser.add_argument("--canonical", nargs="+", type=Path, metavar="NOTEBOOK",
                        help="write these notebooks as saving them in JupyterLab would, and exit")
    args, extra = parser.parse_known_args(argv)
    if args.canonical:
        canonical(args.canonical)
        return 0
    root = args.root.resolve()
    for path in make_copies(root):
        print(f"made your copy: {path.relative_to(root)}")
    with tempfile.TemporaryDirectory(prefix="d2l-io-lab-") as tmp:
        env = dict(os.environ, **write_config(Path(tmp), args.instructor))
        try:
            return subprocess.run(lab_command(root, extra), env=env).returncode
        except KeyboardInterrupt:
            return 0


def __getattr__(name: str):
    # The class is built on first use: importing d2l_utils.lab loads no Jupyter server code.
    if name == "ContentsManager":
        cls = _contents_manager_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
