"""A Dask grading cluster on 127.0.0.1 for tests: a TLS scheduler and workers, each a process
of its own in a folder of its own (its working folder, HOME and TMPDIR), started with the
commands the README gives instructors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from conftest import ROOT

DASK = str(Path(sys.executable).parent / "dask")


@dataclass
class Cluster:
    """The scheduler's address, the certificates, and the processes started (stopped by
    `stop`)."""

    base: Path
    certs: Path
    address: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)

    @property
    def tls(self) -> list[str]:
        """The TLS options of `dask scheduler` and `dask worker`."""
        return ["--tls-ca-file", str(self.certs / "ca.pem"), "--tls-cert",
                str(self.certs / "node.pem"), "--tls-key", str(self.certs / "node.key")]

    def client_options(self) -> list[str]:
        """The options that send `python -m grading grade` to this cluster."""
        return ["--scheduler", self.address, "--tls-ca", str(self.certs / "ca.pem"),
                "--tls-cert", str(self.certs / "node.pem"), "--tls-key", str(self.certs / "node.key")]

    def _folder(self, name: str) -> tuple[Path, dict[str, str]]:
        # A short TMPDIR of its own: the kernels' Unix sockets live below it.
        folder = Path(tempfile.mkdtemp(prefix=f"d2lc-{name}-"))
        (folder / "home").mkdir()
        (folder / "tmp").mkdir()
        self.folders[name] = folder
        env = dict(os.environ, HOME=str(folder / "home"), TMPDIR=str(folder / "tmp"))
        return folder, env

    def start_scheduler(self) -> None:
        folder, env = self._folder("scheduler")
        self.procs["scheduler"] = subprocess.Popen(
            [DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(folder / "scheduler.json"), *self.tls],
            cwd=folder, env=env, stdout=open(folder / "log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (folder / "scheduler.json").is_file():
            if time.monotonic() > deadline or self.procs["scheduler"].poll() is not None:
                raise RuntimeError("the scheduler did not start:\n" + (folder / "log").read_text()[-3000:])
            time.sleep(0.1)
        time.sleep(0.2)  # written before it is complete
        self.address = json.loads((folder / "scheduler.json").read_text())["address"]

    def start_worker(self, name: str, *extra: str, env_extra: dict[str, str] | None = None) -> None:
        """A worker as the README starts one (no nanny, so its pid is the worker's)."""
        folder, env = self._folder(name)
        env.update(env_extra or {})
        self.procs[name] = subprocess.Popen(
            [DASK, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
             "--no-dashboard", "--preload", "grading.engine", "--local-directory",
             str(folder / "dask"), *self.tls, *extra],
            cwd=folder, env=env, stdout=open(folder / "log", "wb"), stderr=subprocess.STDOUT)

    def wait_for_workers(self, n: int, timeout: float = 90) -> None:
        """Until `n` workers have registered with the scheduler (its log says so)."""
        log = self.folders["scheduler"] / "log"
        deadline = time.monotonic() + timeout
        while log.read_text(errors="replace").count("Register worker") < n:
            dead = [k for k, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = {k: (self.folders[k] / "log").read_text(errors="replace")[-2000:] for k in self.procs}
                raise RuntimeError(f"workers did not register (stopped: {dead}):\n{logs}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def left_running(self, name: str) -> list[str]:
        """Processes that still mention `name`'s folder (its sandboxes, runners, kernels), the
        worker itself and its multiprocessing helpers (fork server, resource tracker) apart."""
        mark = str(self.folders[name])
        own = self.procs[name].pid if self.procs[name].poll() is None else None
        helpers = set()
        if own:
            helpers = {c.pid for c in psutil.Process(own).children()
                       if "multiprocessing" in " ".join(c.cmdline())}
        found = []
        for p in psutil.process_iter(["cmdline", "environ"]):
            if p.pid in helpers or p.pid == own:
                continue
            try:
                text = " ".join(p.info["cmdline"] or []) + " ".join((p.info["environ"] or {}).values())
            except (psutil.Error, TypeError):
                continue
            if mark in text and p.pid != os.getpid():
                found.append(f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:200]}")
        return found

    def stop(self) -> None:
        """Workers first (a worker whose scheduler is gone waits to reconnect), then the
        scheduler."""
        order = sorted(self.procs, key=lambda k: k == "scheduler")
        for name in order:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for folder in self.folders.values():
            shutil.rmtree(folder, ignore_errors=True)


def make_certs(folder: Path) -> Path:
    """The README's certificates, made by scripts/grading-certs.sh."""
    subprocess.run(["bash", str(ROOT / "scripts" / "grading-certs.sh"), str(folder)], check=True,
                   capture_output=True)
    return folder
