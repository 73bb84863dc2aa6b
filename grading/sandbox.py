"""Start a Jupyter kernel for untrusted code: hidden course files, no privileges, resource limits.

Used as the argv of the grading kernel (see `kernelspec`):

    python -m grading.sandbox CONFIG.json -f CONNECTION_FILE

CONFIG.json lists `hide` (folders the kernel must neither read nor change: the solutions, the
gradebook's folder, the submissions, the other students' work folders, the repository's .git,
the grader's home), `work` (the folders the kernel works in, its own) and `expose` (folders it
may read inside hidden ones, such as a Python installed in the grader's home).

On Linux the kernel gets its own mount namespace in which every hidden folder is covered by an
empty read-only tmpfs; `keep` folders are bound back in. Run as root (as in CI), the kernel then
drops to the unprivileged user `nobody`, so it cannot write any file it does not own nor signal
the grader. Run as an ordinary user, a user namespace gives the same hiding where the kernel
allows unprivileged user namespaces; if it does not, grading refuses to start (see
`check_available`). Limits: file size (no disk filling) and no core dumps; per-cell time and
output size are enforced by the grader (grading.execute).
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import resource
import shutil
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 32, 4096, 16384, 1 << 18)
MAX_FILE_BYTES = 1 << 30

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None):
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None),
           f"mount {target}")


def _enter_namespace() -> bool:
    """Enter a private mount namespace; True when running as real root (privileges to drop)."""
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(mount namespace)")
        root = True
    else:
        uid, gid = os.geteuid(), os.getegid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user+mount namespace)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        root = False
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    return root


def _hide(hide: list[str], keep: list[str]) -> None:
    """Cover each hidden folder with an empty tmpfs, then bind the kept folders back."""
    keep = [k for k in keep if os.path.isdir(k)]
    fds = {k: os.open(k, os.O_PATH | os.O_DIRECTORY) for k in keep}
    # Deepest first would hide a mount we just made; cover the outermost folders only.
    hide = sorted({h for h in hide if os.path.isdir(h)}, key=len)
    outer = [h for h in hide if not any(h != o and h.startswith(o.rstrip("/") + "/") for o in hide)]
    for h in outer:
        _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    for k, fd in fds.items():
        if any(k == h or k.startswith(h.rstrip("/") + "/") for h in outer):
            os.makedirs(k, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
        os.close(fd)
    for h in outer:
        _mount("none", h, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=64k,mode=0755")


def _drop_privileges(work: list[str]) -> None:
    nobody = pwd.getpwnam("nobody")
    for k in work:
        for folder, _, files in os.walk(k):
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
            for f in files:
                os.chown(os.path.join(folder, f), nobody.pw_uid, nobody.pw_gid)
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def main(argv: list[str]) -> None:
    config = json.loads(Path(argv[0]).read_text())
    connection = argv[argv.index("-f") + 1]
    home = config["home"]
    # The connection file is private to the grader's user: hand the kernel its own copy.
    private = os.path.join(home, "kernel-connection.json")
    shutil.copyfile(connection, private)
    cwd = os.getcwd()
    root = _enter_namespace()
    _hide(config["hide"], config["work"] + config["expose"])
    os.chdir(cwd)  # through the new mounts
    if root:
        _drop_privileges(config["work"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ.update(HOME=home, IPYTHONDIR=os.path.join(home, ".ipython"),
                      XDG_CACHE_HOME=os.path.join(home, ".cache"),
                      MPLCONFIGDIR=os.path.join(home, ".matplotlib"))
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", private,
                              "--HistoryManager.hist_file=:memory:"])


def check_available() -> str | None:
    """None if the sandbox can start here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return "the grading sandbox needs Linux (mount namespaces)"
    pid = os.fork()
    if pid == 0:  # try in a child: namespaces cannot be left once entered
        try:
            _enter_namespace()
            os._exit(0)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return ("this system allows neither root nor unprivileged user namespaces, so student code "
                "cannot be isolated from the course files")
    return None


def kernelspec(folder: Path, config_file: Path, env: dict[str, str]) -> str:
    """Write a kernelspec `d2l-io-sandbox` into folder/kernels/ and return its name."""
    name = "d2l-io-sandbox"
    spec = folder / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "grading.sandbox", str(config_file), "-f", "{connection_file}"],
        "display_name": "d2l-io (grading sandbox)",
        "language": "python",
        "env": env,
    }, indent=1))
    return name


if __name__ == "__main__":
    main(sys.argv[1:])
