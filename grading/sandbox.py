"""Run untrusted code in a bubblewrap sandbox with memory and process limits.

`Sandbox(...).run(argv)` starts `bwrap` (Debian's `bubblewrap` package) with:

* new user, PID, IPC, network, UTS and cgroup namespaces: the sandbox sees only its own
  processes, so it cannot signal or trace the grader or another sandbox; it has no network
  (only its own loopback); `--die-with-parent` and PID namespace teardown mean that killing
  the sandbox kills everything it started (daemons, `setsid` children, double forks);
* an allow-list filesystem: the system's /usr, a few files of /etc, the Python installation
  and the packages it needs, read-only; the job's own folder read-write; a private /tmp and
  /dev/shm; nothing else (not the repository, the course, other submissions or any home);
* no capabilities, a new session (no terminal injection), a cleared environment.

Limits per sandbox (memory, default 4 GB; processes, default 256; files):

* in every case, no file larger than FILE_LIMIT (RLIMIT_FSIZE: a bigger write fails with
  "File too large"), and the private /tmp and /dev/shm each hold at most a quarter of the
  memory limit (tmpfs lives in RAM, which an ordinary user's watchdog cannot see);

* as root, a cgroup per sandbox (cgroup v2, or the v1 memory and pids controllers), so the
  kernel enforces both limits and `cgroup.kill`/the PID namespace end everything at once;
* as an ordinary user, where cgroups are not delegated, RLIMIT_NPROC caps the processes and a
  watchdog in the grader sums the resident memory of the sandbox's processes ten times a second
  and kills the sandbox past the limit.

The watchdog runs in both cases and records why a sandbox was killed.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from grading.limits import FILE_LIMIT, MEMORY_LIMIT, PROCESS_LIMIT

# Files of /etc that programs in the sandbox read; nothing else of /etc (e.g. /etc/shadow).
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
       "localtime", "alternatives", "mime.types", "hosts")


def check_available() -> str | None:
    """None if a sandbox can be started here, else what is missing (one line)."""
    if not sys.platform.startswith("linux"):
        return "grading needs Linux (bubblewrap namespaces)"
    if not shutil.which("bwrap"):
        return ("bubblewrap is not installed: install it with `sudo apt-get install bubblewrap` "
                "(Debian/Ubuntu) or `sudo dnf install bubblewrap` (Fedora)")
    probe = subprocess.run(["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent",
                            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return ("bubblewrap cannot create user namespaces here ("
                + (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
                + "): enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 "
                  "or user.max_user_namespaces > 0), or grade as root")
    return None


def _cgroup_root() -> tuple[str, Path] | None:
    """("v2", dir) or ("v1", /sys/fs/cgroup) where this process may create cgroups, else None."""
    if os.geteuid() != 0:
        return None
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return "v2", base
    if os.access(base / "memory", os.W_OK) and os.access(base / "pids", os.W_OK):
        return "v1", base
    return None


V2_PARENT = "d2l-grading"  # cgroup v2: the sandboxes' cgroups are made below /sys/fs/cgroup/<this>


def sandbox_parents(kind: str, base: Path) -> list[Path]:
    """Where the sandboxes' cgroups are made: below V2_PARENT on v2, in the memory and pids
    hierarchies on v1."""
    return [base / V2_PARENT] if kind == "v2" else [base / "memory", base / "pids"]


def _usage_seconds(usage: Path) -> float:
    """The CPU seconds in a cgroup's cpuacct.usage (v1, nanoseconds) or cpu.stat (v2)."""
    text = usage.read_text()
    if usage.name == "cpuacct.usage":
        return int(text) / 1e9
    return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6


def sandboxes_cpu_seconds(base: Path = Path("/sys/fs/cgroup")) -> float | None:
    """cgroup v2: the CPU seconds every sandbox made on this machine so far has used (their
    parent keeps the usage of removed cgroups); None on cgroup v1, where a sandbox stays in
    the cpuacct cgroup of the process that started it, or before any sandbox was made."""
    try:
        return _usage_seconds(base / V2_PARENT / "cpu.stat")
    except OSError:
        return None


def _sweep_dead(base: Path, pattern: str) -> None:
    """Remove the empty cgroups in `base` matching `pattern` (named ...-<pid>-<n>) whose process
    has ended without removing them: a killed grading run's sandboxes, or a meter whose
    processes outlived `close`'s wait. A cgroup that still holds a process stays."""
    for group in base.glob(pattern):
        try:
            pid = int(group.name.split("-")[-2])
            if not psutil.pid_exists(pid):
                group.rmdir()  # refused while a process is still in it
        except (ValueError, OSError):
            pass


def _joined(procs: list[Path], argv: list[str]) -> list[str]:
    """`argv` run by a shell that first moves itself into each cgroup (the `cgroup.procs` files
    `procs`; exit status 97 if it cannot) and then execs it: inside from its first instruction,
    with all it starts, and with no preexec_fn (which forks a parent whose threads run)."""
    join = "".join(f'echo $$ > "{f}" || exit 97; ' for f in procs)
    return ["sh", "-c", join + 'exec "$@"', "sh", *argv]


def _remove_when_empty(group: Path, pause: float) -> None:
    """Remove a cgroup, trying 50 times `pause` seconds apart while its last processes are
    reaped (rmdir is refused while one is in it)."""
    for _ in range(50):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(pause)


class CpuMeter:
    """CPU seconds used by the processes that `join` it and everything they start, in a
    cgroup of its own: v1's cpuacct, or v2's cpu.stat, where this user may make one. On v2 the
    grading sandboxes move to cgroups of their own; `sandboxes=True` adds their usage over the
    meter's life (every sandbox of that time, so meter one grading run at a time). Where no
    cgroup can be made, only the children this process has waited for since the meter was
    made (and, with `include_self`, this process) are counted, and `complete` is False."""

    def __init__(self, name: str, sandboxes: bool = True, include_self: bool = False):
        self.group: Path | None = None
        self.home: Path | None = None  # where this process was before it joined
        self.usage = ""
        self.include_self = include_self
        self.sandboxes_at = (sandboxes_cpu_seconds() or 0.0) if sandboxes else None
        self.rusage_at = self._rusage()
        for base, usage in ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage"),  # v1
                            (Path("/sys/fs/cgroup"), "cpu.stat")):  # v2
            if (base / usage).exists() or (base / "cgroup.controllers").exists():
                _sweep_dead(base, "d2l-cpu-*")
                group = base / f"d2l-cpu-{name}-{os.getpid()}-{time.monotonic_ns()}"
                try:
                    group.mkdir()
                except OSError:
                    continue
                self.group, self.usage = group, usage
                break
        if self.usage == "cpuacct.usage":
            self.sandboxes_at = None

    @property
    def complete(self) -> bool:
        return self.group is not None

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` started so that it is counted from its first instruction, with all it starts."""
        if self.group is None:
            return argv
        return _joined([self.group / "cgroup.procs"], argv)

    def join(self, pid: int) -> None:
        """Count `pid` from now on, and what it starts; `close` takes this process back to the
        cgroup it came from."""
        if self.group is None:
            return
        if pid == os.getpid():
            v1 = self.usage == "cpuacct.usage"
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                if ("cpuacct" in controllers.split(",")) if v1 else controllers == "":
                    self.home = self.group.parent / path.lstrip("/")
        (self.group / "cgroup.procs").write_text(str(pid))

    def _rusage(self) -> float:
        import resource

        who = [resource.RUSAGE_CHILDREN] + ([resource.RUSAGE_SELF] if self.include_self else [])
        return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, who))

    def seconds(self) -> float:
        if self.group is None:
            return self._rusage() - self.rusage_at
        used = _usage_seconds(self.group / self.usage)
        if self.sandboxes_at is not None:  # v2 only
            used += (sandboxes_cpu_seconds() or 0.0) - self.sandboxes_at
        return used

    def close(self) -> None:
        """Remove the cgroup, once its last processes are reaped."""
        if self.home is not None:
            (self.home / "cgroup.procs").write_text(str(os.getpid()))
        if self.group is not None:
            _remove_when_empty(self.group, 0.1)


class Confinement:
    """A cgroup for one sandbox where possible, and the command prefix that enters it."""

    _count = 0
    _lock = threading.Lock()
    _swept = False  # this process has removed the cgroups that killed runs left

    def __init__(self, memory: int, processes: int, file_size: int = FILE_LIMIT):
        self.memory, self.processes, self.file_size = memory, processes, file_size
        self.dirs: list[Path] = []
        self.kind = None
        found = _cgroup_root()
        if not found:
            return
        kind, base = found
        with Confinement._lock:
            Confinement._count += 1
            name = f"d2l-grading-{os.getpid()}-{Confinement._count}"
            if not Confinement._swept:
                Confinement._swept = True
                for d in sandbox_parents(kind, base):
                    _sweep_dead(d, "d2l-grading-*")
        try:
            if kind == "v2":
                [parent] = sandbox_parents(kind, base)
                parent.mkdir(exist_ok=True)
                for d in (base, parent):
                    (d / "cgroup.subtree_control").write_text("+memory +pids")
                job = parent / name
                job.mkdir()
                self.dirs = [job]
                (job / "memory.max").write_text(str(memory))
                if (job / "memory.swap.max").exists():
                    (job / "memory.swap.max").write_text("0")
                (job / "pids.max").write_text(str(processes))
            else:
                mem, pids = (d / name for d in sandbox_parents(kind, base))
                mem.mkdir()
                self.dirs.append(mem)
                pids.mkdir()
                self.dirs.append(pids)
                (mem / "memory.limit_in_bytes").write_text(str(memory))
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(memory))
                (pids / "pids.max").write_text(str(processes))
            self.kind = kind
        except OSError:
            self.close()
            self.dirs, self.kind = [], None

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` started so that it is inside the limits from its first instruction: prlimit
        caps the file size (and, without cgroups, the user's process count), then a shell
        joins the cgroups, where there are any, and execs it."""
        size = f"--fsize={self.file_size}:{self.file_size}"
        if self.kind:
            return ["prlimit", size, "--", *_joined([d / "cgroup.procs" for d in self.dirs], argv)]
        mine = sum(1 for p in psutil.process_iter(["uids"])
                   if p.info["uids"] and p.info["uids"].real == os.getuid())
        n = mine + self.processes
        return ["prlimit", f"--nproc={n}:{n}", size, "--", *argv]

    def kill_all(self) -> None:
        for d in self.dirs:
            if (d / "cgroup.kill").exists():
                try:
                    (d / "cgroup.kill").write_text("1")
                except OSError:
                    pass
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            except OSError:
                pass

    def close(self) -> None:
        self.kill_all()
        for d in self.dirs:
            _remove_when_empty(d, 0.05)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class Sandbox:
    """What one sandboxed run may see and use."""

    ro: list[str] = field(default_factory=list)      # read-only paths (same path inside)
    code: dict[str, str] = field(default_factory=dict)  # read-only: path inside -> path outside
    rw: list[str] = field(default_factory=list)      # read-write paths (same path inside)
    hide: list[str] = field(default_factory=list)    # covered by an empty tmpfs (inside ro ones)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    memory: int = MEMORY_LIMIT
    processes: int = PROCESS_LIMIT
    file_size: int = FILE_LIMIT

    def argv(self, command: list[str]) -> list[str]:
        a = ["bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
             "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
             "--cap-drop", "ALL", "--hostname", "sandbox", "--clearenv"]
        for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            p = Path("/") / top
            if p.is_symlink():
                a += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                a += ["--ro-bind", str(p), str(p)]
        for name in ETC:
            if (Path("/etc") / name).exists():
                a += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        a += ["--proc", "/proc", "--dev", "/dev"]
        for p in ("/dev/shm", "/tmp"):
            a += [*_tmpfs_size(self.memory // 4), "--tmpfs", p]
        for p in _outermost(self.ro):
            a += ["--ro-bind", p, p]
        for inside, outside in self.code.items():
            a += ["--ro-bind", outside, inside]
        for p in self.hide:
            if os.path.isdir(p):
                a += ["--tmpfs", p, "--remount-ro", p]
        for p in self.rw:
            a += ["--bind", p, p]
        for k, v in self.env.items():
            a += ["--setenv", k, v]
        return a + ["--chdir", self.cwd, "--", *command]

    def run(self, command: list[str], *, limit: float, log: Path | None = None) -> "Outcome":
        """Run `command` in the sandbox for at most `limit` seconds; end everything it started."""
        limits = Confinement(self.memory, self.processes, self.file_size)
        out = open(log, "wb") if log else subprocess.DEVNULL
        start = time.monotonic()
        try:
            proc = subprocess.Popen(limits.wrap(self.argv(command)), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={"PATH": "/usr/bin:/bin"}, close_fds=True)
            reason = watch(proc.pid, self.memory, self.processes, lambda: proc.poll() is not None,
                           deadline=start + limit)
            kill_tree(proc.pid)
            limits.kill_all()
            proc.wait()
        finally:
            limits.close()
            if log:
                out.close()
        return Outcome(proc.returncode, reason, time.monotonic() - start)


def watch(pid: int, memory: int, processes: int, done, deadline: float | None = None,
          every: float = 0.1) -> str:
    """Poll the process tree under `pid` until `done()`; return why it must be killed (memory,
    process count, time), or "" once it is done by itself. Resident memory is summed over the
    tree (shared pages count once per process, so this errs on the side of stopping early)."""
    while not done():
        if deadline is not None and time.monotonic() > deadline:
            return "it ran out of time"
        tree = _tree(pid)
        rss = 0
        for p in tree:
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                pass
        # At 90%: a cgroup at its limit stalls in reclaim before its OOM killer acts.
        if rss > 0.9 * memory:
            return f"it reached its memory limit ({memory / 2**30:.1f} GB)"
        if len(tree) > processes + 3:
            return f"it started more than {processes} processes"
        time.sleep(every)
    return ""


@dataclass
class Outcome:
    returncode: int
    killed_because: str  # empty when it ended by itself
    seconds: float


def kill_tree(pid: int) -> None:
    """SIGKILL the outer bwrap and everything below it (the PID namespace dies with its init)."""
    for p in reversed(_tree(pid)):
        try:
            p.kill()
        except psutil.Error:
            pass


@functools.cache
def tmpfs_sized() -> bool:
    """bubblewrap 0.8 and later size a tmpfs (`--size`); older ones cannot."""
    return "--size" in subprocess.run(["bwrap", "--help"], capture_output=True, text=True).stdout


def _tmpfs_size(limit: int) -> list[str]:
    return ["--size", str(limit)] if tmpfs_sized() else []


def _outermost(paths: list[str]) -> list[str]:
    """The paths as given and as resolved, without those inside another (binding the outer
    one covers them)."""
    real = sorted({q for p in paths if os.path.exists(p)
                   for q in (os.path.abspath(p), os.path.realpath(p))})
    keep: list[str] = []
    for p in real:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in keep):
            keep.append(p)
    return keep
