"""`python -m grading handout`: what students get holds no solution and no hidden test."""

import re
import subprocess
import sys
import zipfile

import pytest

from conftest import FRAMEWORKS, ROOT
from grading.__main__ import main


def test_handout_has_workbooks_and_no_solutions(tmp_path):
    out = tmp_path / "handout"
    # As a command, in a process of its own: in this one, an earlier test's TensorFlow may have
    # tied a log handler to a stream that no longer exists.
    made = subprocess.run([sys.executable, "-m", "grading", "handout", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert made.returncode == 0, made.stderr[-3000:]
    assert f"wrote the student handout to {out}" in made.stdout
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for fw in FRAMEWORKS:
        assert f"notebooks/{fw}/exercises.ipynb" in files
        assert f"notebooks/{fw}/read-write.ipynb" in files
    assert {"README.md", "Makefile", "setup.mk", "START.md", "environment.yml",
            "requirements.lock", "requirements-mxnet.lock", "environment-mxnet.yml",
            "d2l_utils/__init__.py", "d2l_utils/lab.py"} <= files
    # Its own README and Makefile: only what works there (set-up and JupyterLab).
    assert (out / "README.md").read_text() == (ROOT / "grading/handout_files/README.md").read_text()
    assert "work/<framework>/exercises.ipynb" in (out / "README.md").read_text()
    targets = subprocess.run(["make", "-C", str(out), "-pRrq"], capture_output=True, text=True).stdout
    rules = {line.split(":")[0] for line in targets.splitlines()
             if re.match(r"^[a-z][\w-]*:", line) and not line.startswith(("#", "\t"))}
    assert {"setup", "lab"} <= rules and not rules & {"test", "grade", "workbooks", "handout"}, rules
    dry = subprocess.run(["make", "-C", str(out), "-n", "lab"], capture_output=True, text=True)
    assert dry.returncode == 0 and "d2l_utils.lab" in dry.stdout, dry.stderr
    # The package builds from the handout alone (it has no grading/).
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "wheel"), str(out)], capture_output=True, text=True)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    names = zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl"))).namelist()
    assert "d2l_utils/lab.py" in names and not any(n.startswith("grading/") for n in names)
    assert not any(f.startswith(("solutions/", "grading/", "course/")) for f in files)
    # The grading checks (what decides a score) are the hidden tests: every module has this line.
    marker = "from grading.checks import Check"
    assert all(marker in m.read_text() for m in (ROOT / "grading" / "checks").glob("[!_]*.py"))
    for f in files:
        text = (out / f).read_bytes().decode("utf-8", "replace")
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, f
        assert marker not in text, f


def test_handout_refuses_a_leak_and_an_existing_folder(tmp_path):
    from grading.handout import check

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "x.py").write_text("### BEGIN SOLUTION\nanswer = 42\n")
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "a.ipynb").write_text("{}")
    problems = check(tmp_path)
    assert any("x.py" in p and "BEGIN SOLUTION" in p for p in problems)
    assert any("solutions/a.ipynb" in p for p in problems)
    existing = tmp_path / "taken"
    existing.mkdir()
    with pytest.raises(SystemExit, match="already exists"):
        main(["handout", "--out", str(existing)])
