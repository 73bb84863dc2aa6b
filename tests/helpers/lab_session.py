"""What the browser tests share: Debian's Chromium (or a skip), a copy of the repository,
JupyterLab started on it as `make lab` / `make lab-instructor` start it, and a Chromium that
leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import ROOT

CHROMIUM = os.environ.get("D2L_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
"""The Chromium the browser tests drive (D2L_CHROMIUM, else Debian's), or None."""


def skip_unless_ci(why: str) -> None:
    """Skip the calling test module for `why`, except under CI=true: a failure there, since CI
    must run every test."""
    if os.environ.get("CI") == "true":
        pytest.fail(why + " (CI=true: these tests must run)", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def require_chromium() -> None:
    """Skip the calling test module without Chromium, except under CI=true (a failure there)."""
    if not CHROMIUM:
        skip_unless_ci("Chromium not found: install it (Debian: apt-get install chromium) or "
                       "set D2L_CHROMIUM to its path")


def git(cwd, *args) -> str:
    """The output of `git ARGS` run in `cwd` (an error if it fails)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


def copy_repository(copy: Path) -> None:
    """The repository's files (tracked, or new and not ignored) copied into `copy`."""
    files = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)


def isolated_env(base: Path) -> dict[str, str]:
    """Nothing of the user's own Jupyter set-up (settings, workspaces) takes part."""
    return dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"),
                JUPYTER_RUNTIME_DIR=str(base / "runtime"),
                JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
                JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
                D2L_SCRATCH=str(base / "scratch"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(copy: Path, env: dict[str, str], log_path: Path, *options: str):
    """`python -m d2l_utils.lab OPTIONS` on `copy`; yields the URL it prints (with its token)
    once a connection to it is accepted, and stops it with everything it started."""
    log = open(log_path, "w+")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "d2l_utils.lab", *options, "--root", str(copy), "--ip=127.0.0.1",
         "--no-browser", f"--port={port}", "--ServerApp.port_retries=0"],
        cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Up once its URL is printed and a connection to it is accepted: Jupyter Server prints
        # the URL before its event loop starts listening, so a loaded machine can refuse the
        # first connections.
        deadline, url, up = time.monotonic() + 60, None, False
        while not up:
            assert proc.poll() is None and time.monotonic() < deadline, _tail(log)
            time.sleep(0.1)
            if url is None:
                log.seek(0)
                m = re.search(rf"(http://127\.0\.0\.1:{port}/lab\S*\?token=\w+)", log.read())
                url = m and m.group(1)
            if url:
                try:
                    urllib.request.urlopen(url, timeout=30).close()
                    up = True
                except urllib.error.URLError as err:
                    assert isinstance(err.reason, ConnectionRefusedError), err
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _tail(log) -> str:
    log.seek(0)
    return log.read()[-3000:]


@contextlib.contextmanager
def chromium():
    """A Playwright Browser on Debian's Chromium; every Chromium process it started is killed
    at the end (Chromium outlives its driver otherwise)."""
    from playwright.sync_api import sync_playwright

    before = {p.pid for p in psutil.process_iter()}
    with sync_playwright() as pw:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        ours = [p for p in psutil.process_iter(["name"]) if p.pid not in before
                and "chrom" in (p.info["name"] or "")]
        try:
            yield browser
        finally:
            browser.close()
            for p in ours:
                if p.is_running():
                    p.kill()
