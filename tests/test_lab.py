"""JupyterLab as `make lab` serves the workbook (d2l_utils.lab), without a browser: saving an
unchanged notebook changes no byte, the original workbooks cannot be saved over, students get
copies, and nbgrader's authoring tools are for instructors only. tests/test_browser.py drives
the same server from Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from jupyter_core.utils import run_sync
from tornado import web

from conftest import FRAMEWORKS, ROOT
from d2l_utils import lab
from d2l_utils.kernel import KERNELS, NAME, SETTINGS

NOTEBOOKS = sorted(Path(p) for p in subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.ipynb"], cwd=ROOT,
    capture_output=True, text=True, check=True).stdout.split() if not p.startswith("tests/"))


def _copy(tmp_path):
    for rel in NOTEBOOKS:
        for path in (rel, rel.with_suffix(".py")):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / path, tmp_path / path)
    return tmp_path


def test_every_notebook_has_a_twin_and_names_the_kernel():
    assert len(NOTEBOOKS) >= 2 * len(FRAMEWORKS) + len(FRAMEWORKS) + 1
    for rel in NOTEBOOKS:
        assert (ROOT / rel).with_suffix(".py").exists(), rel
        spec = json.loads((ROOT / rel).read_text())["metadata"]["kernelspec"]
        # JupyterLab writes the running kernel's spec into the notebook when it saves it.
        kernel = KERNELS.get(rel.parent.name, NAME)  # notebooks/<framework>/, solutions/<framework>/
        assert spec == {"name": kernel, "display_name": kernel, "language": "python"}, rel


@pytest.mark.parametrize("suffix", [".ipynb", ".py"])
def test_saving_an_unchanged_notebook_changes_no_byte(tmp_path, suffix):
    """What JupyterLab's Save does on the server (jupytext's contents manager, configured by
    pyproject.toml), for every committed notebook opened as .ipynb and as its .py twin."""
    _copy(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    cm = lab.contents_manager(tmp_path)
    for rel in NOTEBOOKS:
        path = rel.with_suffix(suffix).as_posix()
        model = cm.get(path, content=True, type="notebook")
        cm.save(model, path)
    # (.ipynb_checkpoints/, which git ignores, is where Save keeps the previous version)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*")
             if p.is_file() and ".ipynb_checkpoints" not in p.parts}
    changed = sorted(str(p.relative_to(tmp_path)) for p in after if before.get(p) != after[p])
    assert changed == [], "saving these changes them (run `make execute` or `make workbooks`)"


def test_canonical_is_what_saving_writes(tmp_path):
    """A notebook written by another tool (here: its twin's metadata dropped) is rewritten by
    `python -m d2l_utils.lab --canonical` into the form saving keeps."""
    _copy(tmp_path)
    rel = NOTEBOOKS[0]
    nb = json.loads((tmp_path / rel).read_text())
    del nb["metadata"]["jupytext"]
    (tmp_path / rel).write_text(json.dumps(nb))
    assert (tmp_path / rel).read_bytes() != (ROOT / rel).read_bytes()
    assert lab.main(["--canonical", str(tmp_path / rel)]) == 0
    assert (tmp_path / rel).read_bytes() == (ROOT / rel).read_bytes()
    assert (tmp_path / rel).with_suffix(".py").read_bytes() == (ROOT / rel).with_suffix(".py").read_bytes()


def test_originals_are_read_only_and_students_get_copies(tmp_path):
    _copy(tmp_path)
    made = lab.make_copies(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in made) == sorted(lab.WORKBOOKS.values())
    for fw in FRAMEWORKS:
        assert (tmp_path / f"work/{fw}/exercises.ipynb").read_bytes() == \
            (ROOT / f"notebooks/{fw}/exercises.ipynb").read_bytes()
    # A student's copy is never overwritten.
    mine = tmp_path / "work/pytorch/exercises.ipynb"
    mine.write_text(mine.read_text().replace("YOUR CODE HERE", "my answer"))
    assert lab.make_copies(tmp_path) == []
    assert "my answer" in mine.read_text()

    cm = lab.ContentsManager(root_dir=str(tmp_path))
    original = "notebooks/pytorch/exercises.ipynb"
    model = run_sync(cm.get)(original, content=True)
    assert model["writable"] is False
    with pytest.raises(web.HTTPError) as refused:
        run_sync(cm.save)(model, original)
    assert refused.value.status_code == 403
    assert "work/pytorch/exercises.ipynb" in refused.value.log_message
    assert (tmp_path / original).read_bytes() == (ROOT / original).read_bytes()
    # The copy and the walkthroughs save as usual.
    for path in ("work/pytorch/exercises.ipynb", "notebooks/pytorch/read-write.ipynb"):
        model = run_sync(cm.get)(path, content=True)
        assert model["writable"] is True
        run_sync(cm.save)(model, path)


def test_nbgrader_tools_for_instructors_only(tmp_path):
    student = tmp_path / "student"
    env = lab.write_config(student, instructor=False)
    assert env["JUPYTER_CONFIG_PATH"].split(":")[0] == str(student)
    page = json.loads((student / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {lab.NBGRADER_LAB: True}
    server = json.loads((student / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == dict.fromkeys(lab.NBGRADER_SERVER, False)
    assert server["KernelSpecManager"]["allowed_kernelspecs"] == ["d2l-io", "d2l-io-mxnet"]
    teacher = tmp_path / "teacher"
    lab.write_config(teacher, instructor=True)
    assert json.loads((teacher / "labconfig" / "page_config.json").read_text())["disabledExtensions"] == {}
    # The names are nbgrader's own: its lab extension and server extensions as installed.
    import sys
    from pathlib import Path

    prefix = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
    assert (prefix / lab.NBGRADER_LAB / "package.json").exists()
    installed = json.loads((Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/nbgrader.json")
                           .read_text())["ServerApp"]["jpserver_extensions"]
    assert sorted(installed) == sorted(lab.NBGRADER_SERVER)


def test_settings_are_installed_with_the_kernel():
    import sys
    from pathlib import Path

    overrides = Path(sys.prefix) / "share/jupyter/lab/settings/overrides.json"
    assert json.loads(overrides.read_text()) == SETTINGS
    # The viewer names are the factories JupyterLab and jupytext register.
    viewers = SETTINGS["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    static = Path(sys.prefix) / "share/jupyter/labextensions/jupyterlab-jupytext/static"
    assert any(viewers["python"] in p.read_text(errors="replace") for p in static.glob("*.js"))


def test_start_page_links_every_notebook():
    text = (ROOT / lab.START).read_text()
    for fw in FRAMEWORKS:
        assert f"(notebooks/{fw}/read-write.ipynb)" in text, fw
        assert f"(work/{fw}/exercises.ipynb)" in text, fw
    assert "(notebooks/portable-checkpoints.ipynb)" in text
    assert NAME in text
    ignored = subprocess.run(["git", "check-ignore", "-q", "work/pytorch/exercises.ipynb"], cwd=ROOT)
    assert ignored.returncode == 0, "work/ (the students' copies) must be ignored by git"
