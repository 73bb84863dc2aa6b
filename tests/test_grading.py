"""`python -m grading grade` against a class written independently of the solutions.

* The hostile class (tests/fixtures/hostile, written from the student workbook and the
  grader's README alone) hands in the featherweight "selftest" assignment, which imports no
  framework: other correct answers, cheats on the test machinery, bombs, daemons, signals,
  network and file probes, odd and broken notebooks. Each must score exactly its honest work
  (manifest.json: "points"), leave no process running, reach no host socket, leak no host
  file and write nothing outside its folder; where an entry lists "feedback", its feedback
  page shows those lines (the limit it met, as its own cell printed it). The whole class is
  graded as root; the entries marked "as_user" again as an ordinary user with the repository
  in their home.
* The fair class (tests/fixtures/fair/<framework>) is in test_grading_fair.py, a file of its
  own so that pytest-xdist grades the two classes on different workers.

What the grading tests share is in tests/helpers/grading.py.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.grading import (
    FIXTURES,
    digest,
    grade_cmd,
    lay_out,
    make_source,
    read_scores,
)

from conftest import ROOT
from grading.course import put_alembic_on_path

pytestmark = pytest.mark.slow  # grades hostile classes in sandboxes: not in `make check`

HOSTILE = json.loads((FIXTURES / "hostile" / "manifest.json").read_text())
# A line of the checks' code: it must never reach a student's feedback.
CHECK_CODE = "math.isclose(got, want, rel_tol=1e-9)"
assert CHECK_CODE in (ROOT / "grading" / "checks" / "selftest.py").read_text()


def _leftovers(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


class Host:
    """What a submission must not reach on the grading machine: secret files in /tmp (the
    fixtures link their exports to these paths) and a Unix socket listening in /tmp."""

    SECRETS = ("HOSTSECRET-exports.json", "HOSTSECRET-log.txt", "HOSTSECRET-nb.ipynb")
    SOCKET = "/tmp/HOSTLISTENER.sock"

    def __enter__(self):
        self.token = f"host-secret-{os.urandom(8).hex()}"
        for name in self.SECRETS:
            Path("/tmp", name).write_text(json.dumps({"secret": self.token}))
            os.chmod(Path("/tmp", name), 0o644)
        if os.path.lexists(self.SOCKET):
            os.unlink(self.SOCKET)
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.SOCKET)
        os.chmod(self.SOCKET, 0o777)
        self.listener.listen(64)
        self.listener.setblocking(False)
        return self

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def __exit__(self, *exc):
        self.listener.close()
        for name in (*self.SECRETS, os.path.basename(self.SOCKET)):
            Path("/tmp", name).unlink(missing_ok=True)


def _attack_files(*extra: Path) -> list[str]:
    """Files named ATTACK-* where the fixtures try to write outside their folder."""
    places = [Path("/tmp"), Path("/dev/shm"), Path("/etc"), Path("/usr"), Path("/root"), ROOT,
              ROOT / "grading", ROOT / "grading" / "checks", ROOT / "d2l_utils", Path(sys.prefix),
              *(Path(p) for p in sys.path if p.endswith("site-packages")), *extra]
    found = []
    for place in places:
        try:
            found += [str(p) for p in place.iterdir() if p.name.startswith("ATTACK-")]
        except OSError:
            pass
    return found


def _check_hostile(base: Path, proc: subprocess.CompletedProcess, subs: Path, before: dict,
                   entries: list[dict], host: Host, source: Path, *extra: Path) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    scores = read_scores(base / "course")
    wrong = {e["student"]: (scores.get((e["student"], "selftest")), e["points"])
             for e in entries
             if scores.get((e["student"], "selftest")) not in {float(p) for p in e.get("allowed", [e["points"]])}}
    assert wrong == {}, "student: (score, honest points)"
    assert _leftovers("ATTACK-") == []
    assert _attack_files(*extra) == []
    assert host.connections() == 0, "a submission reached a Unix socket of the host"
    assert digest(subs) == before["submitted"]
    assert digest(ROOT / "solutions") == before["solutions"]
    assert digest(source / "selftest") == before["source"]
    outputs = proc.stdout + proc.stderr + (base / "course" / "grades.csv").read_text()
    assert host.token not in outputs
    for page in (base / "course" / "feedback").rglob("*.html"):
        text = page.read_text()
        assert CHECK_CODE not in text and host.token not in text, page
    for e in entries:
        for line in e.get("reported", []):
            assert line.replace("{base}", str(base)) in proc.stdout + proc.stderr, (e["student"], line)
        if e.get("feedback"):  # what the sandbox refused, as the student's own cell printed it
            page = base / "course" / "feedback" / e["student"] / "selftest" / "exercises.html"
            text = html.unescape(page.read_text())
            for line in e["feedback"]:
                assert line in text, (e["student"], line)


# The hostile classes' cell time limit: long enough for a cell to write 512 MB and be refused
# the next byte (2.8 s on this machine when idle, over 5 s while the fair class grades beside it).
HOSTILE_TIMEOUT = 10


@pytest.fixture(scope="module")
def root_class(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("grading as root needs root")
    base = tmp_path_factory.mktemp("hostile-root")
    source = make_source(base)
    subs = lay_out(base, HOSTILE, FIXTURES / "hostile", "selftest", source)
    before = {"submitted": digest(subs), "solutions": digest(ROOT / "solutions"),
              "source": digest(source / "selftest")}
    with Host() as host:
        proc = subprocess.run(grade_cmd(sys.executable, subs, base / "course", source,
                                        HOSTILE_TIMEOUT),
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        _check = lambda: _check_hostile(base, proc, subs, before, HOSTILE, host, source)  # noqa: E731
        try:
            _check()
            failure = None
        except AssertionError as exc:
            failure = exc
    return base, proc, subs, before, source, failure


def test_hostile_class_as_root(root_class):
    if root_class[-1] is not None:
        raise root_class[-1]


def test_regrading_replaces_the_grade(root_class):
    base, _, _, _, source, _ = root_class
    again = base / "again"
    first = next(e for e in HOSTILE if e["student"] == "fair_folder")
    assert read_scores(base / "course")[(first["student"], "selftest")] == 4.0
    folder = again / first["student"] / "selftest"
    folder.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "hostile" / "untouched.ipynb", folder / "exercises.ipynb")
    proc = subprocess.run(grade_cmd(sys.executable, again, base / "course", source,
                                    HOSTILE_TIMEOUT),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_scores(base / "course")[(first["student"], "selftest")] == 0.0
    from nbgrader.api import Gradebook

    put_alembic_on_path()
    with Gradebook(f"sqlite:///{base / 'course' / 'gradebook.db'}") as gb:
        assert len([s for s in gb.assignment_submissions("selftest")
                    if s.student.id == first["student"]]) == 1


def test_empty_submissions_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "grading", "grade", str(tmp_path / "empty"),
                           "--course", str(tmp_path / "course")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f"{tmp_path / 'empty'}: no submissions (expected <student>/<assignment>/exercises.ipynb)")


USER = "d2l-grade-test"

# Run a command as USER. Where the Python installation lives in a folder USER cannot enter
# (pyenv under /root), a private mount namespace makes just that installation reachable.
AS_USER = textwrap.dedent("""
    set -e
    as_user() { setpriv --reuid="$U" --regid="$U" --init-groups "$@"; }
    # The shared Python installation and environment ($PYBASE, $VENV) may lie below a folder
    # the user cannot enter (/root, a 0700 clone made by mktemp -d). In this private mount
    # namespace each is set aside, the outermost such folder is covered by an empty tmpfs, and
    # the path is made again and bound back: the user reaches exactly these, nothing beside.
    # (All are set aside before any tmpfs is mounted: both may lie below the same folder.)
    n=0 blocked="" moved=""
    for real in "$PYBASE" "$VENV"; do
        as_user test -x "$real/bin/python3" && continue
        n=$((n + 1)); mkdir -p "/run/d2l-reach/$n" && mount --bind "$real" "/run/d2l-reach/$n"
        moved="$moved $n:$real" outermost="" d="$real"
        while [ "$d" != / ]; do d="$(dirname "$d")"; as_user test -x "$d" || outermost="$d"; done
        blocked="$blocked $outermost"
    done
    for d in $blocked; do mount -t tmpfs -o mode=755 tmpfs "$d"; done
    for entry in $moved; do
        real="${entry#*:}"; mkdir -p "$real" && mount --bind "/run/d2l-reach/${entry%%:*}" "$real"
    done
    cd "$WORK"
    exec setpriv --reuid="$U" --regid="$U" --init-groups env -i HOME="$HOMEDIR" PATH=/usr/bin:/bin "$@"
""")


@pytest.fixture(scope="module")
def user_home():
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating an ordinary user needs root")
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    home = Path(pwd.getpwnam(USER).pw_dir)
    yield home
    subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)
    subprocess.run(["userdel", "-r", USER], capture_output=True)


def test_hostile_class_as_ordinary_user(user_home):
    """The repository in the user's home (a copy of the tracked files), the environment
    shared, every guarantee the same."""
    user = pwd.getpwnam(USER)
    repo = user_home / "d2l-io"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, repo / f)
    (repo / ".venv").symlink_to(Path(sys.prefix))
    base = user_home / "class"
    base.mkdir()
    entries = [e for e in HOSTILE if e.get("as_user")]
    source = make_source(base)
    subs = lay_out(base, entries, FIXTURES / "hostile", "selftest", source)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(user_home)], check=True)
    before = {"submitted": digest(subs), "solutions": digest(ROOT / "solutions"),
              "source": digest(source / "selftest")}
    cmd = grade_cmd(str(repo / ".venv" / "bin" / "python"), subs, base / "course", source,
                    HOSTILE_TIMEOUT)
    env = dict(os.environ, PYBASE=os.path.realpath(sys.base_prefix), VENV=sys.prefix,
               U=str(user.pw_uid), WORK=str(repo), HOMEDIR=str(user_home))
    with Host() as host:
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               AS_USER, "sh", *cmd], env=env, capture_output=True, text=True,
                              timeout=600)
        _check_hostile(base, proc, subs, before, entries, host, source, user_home, repo,
                       repo / "grading", repo / "d2l_utils")
