"""`python -m grading handout`: what students get holds no solution and no hidden test."""

import pytest

from conftest import FRAMEWORKS, ROOT
from grading.__main__ import main


def test_handout_has_workbooks_and_no_solutions(tmp_path, capsys):
    out = tmp_path / "handout"
    assert main(["handout", "--out", str(out)]) == 0
    assert f"wrote the student handout to {out}" in capsys.readouterr().out
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for fw in FRAMEWORKS:
        assert f"notebooks/{fw}/exercises.ipynb" in files
        assert f"notebooks/{fw}/read-write.ipynb" in files
    assert {"README.md", "environment.yml", "requirements.lock", "d2l_utils/__init__.py"} <= files
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
