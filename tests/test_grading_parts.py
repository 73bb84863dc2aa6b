"""The grader's parts on their own, without root, a sandbox or a kernel: the sandbox's bwrap
command line, the runner's plan of a notebook and its job file, the code that export bodies
become in the kernel, and the sealing of an export folder. (The classes in test_grading.py
check the same promises end to end.)"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zlib

import nbformat
import pytest

from grading import checks, runner
from grading.limits import MAX_EXPORT_BYTES
from grading.sandbox import Sandbox


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_sandbox_argv_cuts_off_network_and_host_environment(tmp_path):
    ro, rw, code = tmp_path / "ro", tmp_path / "rw", tmp_path / "code"
    for p in (ro, rw, code):
        p.mkdir()
    (ro / "inner").mkdir()
    box = Sandbox(ro=[str(ro), str(ro / "inner")], code={"/opt/code/grading": str(code)},
                  rw=[str(rw)], env={"HOME": str(rw)}, cwd=str(rw))
    argv = box.argv(["python", "-c", "pass"])
    cut = argv.index("--")
    assert argv[:1] == ["bwrap"] and argv[cut + 1:] == ["python", "-c", "pass"]
    options = argv[:cut]
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-user", "--unshare-ipc",
                 "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in options, flag
    assert options[options.index("--cap-drop") + 1] == "ALL"
    # read-only: the outermost folder once (its inner folder is covered), the code at its place
    assert (str(ro), str(ro)) in _pairs(options, "--ro-bind")
    assert (str(ro / "inner"), str(ro / "inner")) not in _pairs(options, "--ro-bind")
    assert (str(code), "/opt/code/grading") in _pairs(options, "--ro-bind")
    # writable only where asked, and bound after the read-only ones (a later bind wins)
    assert _pairs(options, "--bind") == [(str(rw), str(rw))]
    last_ro = max(i for i, a in enumerate(options) if a == "--ro-bind")
    assert options.index("--bind") > last_ro
    # no host variable: only those given, after --clearenv
    assert _pairs(options, "--setenv") == [("HOME", str(rw))]
    assert options.index("--setenv") > options.index("--clearenv")
    assert options[options.index("--chdir") + 1] == str(rw)
    # /tmp and /dev/shm are private and sized
    tmpfs = [options[i + 1] for i, a in enumerate(options) if a == "--tmpfs"]
    assert "/tmp" in tmpfs and "/dev/shm" in tmpfs
    assert "/etc/shadow" not in options


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, source, gid in cells:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(source)
        if gid:
            cell.metadata["nbgrader"] = {"grade": True, "grade_id": gid, "points": 1}
        nb.cells.append(cell)
    return nb


def test_runner_plan_skips_visible_tests_and_exports_after_their_cell():
    nb = _notebook(("code", "import json", None), ("markdown", "# Ex 1", None),
                   ("code", "def f(): ...", None), ("code", "assert f() is None", "ex1"),
                   ("code", "print('demo')", None), ("markdown", "notes", "ex3-answer"))
    exports = {"ex1": "code-1", "ex2": "code-2"}
    assert runner.plan(nb, exports) == [
        ("cell", 0), ("cell", 2), ("skip", 3), ("export", "ex1"), ("cell", 4),
        ("export", "ex2"),  # its cell was deleted: exported at the end, with what is defined
    ]


def test_a_grade_cell_duplicated_by_the_student_exports_once():
    nb = _notebook(("code", "x = 1", "ex1"), ("code", "x = 2", "ex1"))
    assert runner.plan(nb, {"ex1": "code"}) == [("skip", 0), ("export", "ex1"), ("skip", 1)]


def test_kernel_code_runs_the_body_under_a_fresh_name_and_leaves_nothing(tmp_path):
    body = """
        import json
        (out / "got.json").write_text(json.dumps([seed, h["SIX"] * 7, str(saved), os_cwd()]))
        scratch("x").joinpath("f").write_text("temporary")
    """
    helpers = "SIX = 6\n"
    here = os.getcwd()
    one = checks.kernel_code(body, helpers=helpers, out=str(tmp_path), seed=5, saved="/s")
    two = checks.kernel_code(body, helpers=helpers, out=str(tmp_path), seed=5, saved="/s")
    assert one != two, "each call draws its own name"
    assert "json" not in one and "SIX" not in one, "the kernel receives it encoded"
    ns: dict = {"os_cwd": os.getcwd}
    exec(one, ns)  # noqa: S102  (the grader's own code)
    seed, answer, saved, cwd = json.loads((tmp_path / "got.json").read_text())
    assert (seed, answer, saved) == (5, 42, "/s")
    assert cwd != here and not os.path.exists(cwd), "the body ran in a scratch folder, removed after"
    assert os.getcwd() == here
    assert sorted(ns) == ["__builtins__", "os_cwd"], "the function deletes itself, error or not"


def test_kernel_code_names_the_missing_function_and_still_deletes_itself(tmp_path):
    code = checks.kernel_code('student("save_checkpoint")', helpers="", out=str(tmp_path), seed=1)
    ns: dict = {"save_checkpoint": 3}  # defined, but not a function
    with pytest.raises(NameError, match="save_checkpoint is not defined: run the cell"):
        exec(code, ns)  # noqa: S102
    assert sorted(ns) == ["__builtins__", "save_checkpoint"]


@pytest.mark.parametrize("assignment", ["selftest", "pytorch", "tensorflow", "jax", "mxnet"])
def test_every_export_body_compiles_in_the_wrapper(assignment, tmp_path):
    """A syntax or indentation slip in a body shows here, not in a grading run."""
    module = checks.load(assignment)
    bodies = dict(module.EXPORTS)
    bodies.update({f"{gid} (reload)": r.body for gid, r in getattr(module, "RELOADS", {}).items()})
    for gid, body in bodies.items():
        code = checks.kernel_code(body, helpers=module.HELPERS, out=str(tmp_path), seed=1, saved="/s")
        blob = code.split("b64decode('")[1].split("'")[0]
        compile(zlib.decompress(base64.b64decode(blob)).decode(), gid, "exec")


def test_seal_keeps_regular_files_only_and_empties_the_kernel_side(tmp_path):
    src, dst = tmp_path / "exports" / "ex1", tmp_path / "sealed" / "ex1"
    (src / "sub").mkdir(parents=True)
    (src / "weights.safetensors").write_bytes(b"w" * 10)
    (src / "sub" / "meta.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    (src / "link.txt").symlink_to(secret)
    os.mkfifo(src / "pipe")
    runner.seal(src, dst)
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == [
        "sub", "sub/meta.json", "weights.safetensors"]
    assert not src.exists(), "nothing is left where the kernel could change it"
    assert secret.read_text() == "host file"


def test_seal_of_a_linked_or_missing_folder_is_an_empty_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_text("{}")
    linked = tmp_path / "exports" / "ex1"
    linked.parent.mkdir()
    linked.symlink_to(outside, target_is_directory=True)
    runner.seal(linked, tmp_path / "sealed" / "ex1")
    runner.seal(tmp_path / "exports" / "ex2", tmp_path / "sealed" / "ex2")
    assert list((tmp_path / "sealed" / "ex1").iterdir()) == []
    assert list((tmp_path / "sealed" / "ex2").iterdir()) == []
    assert (outside / "x.json").is_file(), "the folder a link pointed to is not touched"


def test_seal_drops_an_export_over_the_size_limit(tmp_path, monkeypatch):
    import grading.limits

    monkeypatch.setattr(grading.limits, "MAX_EXPORT_BYTES", 100)
    src = tmp_path / "exports" / "ex1"
    src.mkdir(parents=True)
    (src / "big.bin").write_bytes(b"x" * 101)
    runner.seal(src, tmp_path / "sealed" / "ex1")
    assert list((tmp_path / "sealed" / "ex1").iterdir()) == []
    assert MAX_EXPORT_BYTES > 100  # the real limit is untouched



def test_the_runners_job_round_trips_through_its_file():
    box = Sandbox(ro=["/usr"], code={"/run/x": "/opt/x"}, rw=["/w"], env={"HOME": "/w"}, cwd="/w",
                  memory=2**30, processes=64, file_size=2**20)
    reload = runner.ReloadJob(codes={"ex1": "pass"}, paths={"ex1": ["saved/ckpt"]},
                              saved_dir="/w/saved", moved="/w2/moved", exports_dir="/w2/exports",
                              runtime="/w2/rt", pinned="/w/s2", cwd="/w2/sub", sandbox=box)
    job = runner.RunJob(notebook="/w/sub/exercises.ipynb", out_notebook="/w/executed.ipynb",
                        log="/w/exports.json", exports_dir="/w/exports", exports={"ex1": "pass"},
                        sealed_dir="/w/sealed", runtime="/w/rt", kernel="d2l-io", pinned="/w/s",
                        cwd="/w/sub", python="/venv/bin/python", timeout=7, grace=2,
                        output_limit=1000, sandbox=box, reload=reload)
    again = runner.RunJob.from_json(job.to_json())
    assert again == job
    assert isinstance(again.sandbox, Sandbox) and isinstance(again.reload.sandbox, Sandbox)


def test_runner_and_submission_do_not_import_each_other():
    """The runner (forked for every submission) needs grading.files, not the grader's side."""
    code = ("import sys, grading.runner; "
            "print(sorted(m for m in sys.modules if m in ('grading.submission', 'grading.grade', 'grading.engine')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_embedded_cluster_listens_on_localhost_only():
    import psutil

    from grading import engine

    with engine.cluster(None, 2):
        listening = [c.laddr for c in psutil.Process().net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
    assert all(a.ip == "127.0.0.1" for a in listening), listening
