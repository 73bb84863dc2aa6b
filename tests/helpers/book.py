"""The website as `make book` builds it (into a folder of the test's own), and a web server
for it on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("sphinx", "myst_nb", "sphinx_design", "sphinx_book_theme", "bs4")


def require_book_packages() -> None:
    """Skip the calling test module without the site's packages, except under CI=true."""
    missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
    if not missing:
        return
    why = f"the website's packages are not installed: {', '.join(missing)}"
    if os.environ.get("CI") == "true":
        pytest.fail(why + " (CI=true: the website tests must run)", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def build(base: Path, *defines: str) -> tuple[Path, float]:
    """The site built as `make book` builds it, with `-D name=value` DEFINES, into base/html;
    returns that folder and the build's wall time in seconds (a failure shows Sphinx's output)."""
    (base / "src").mkdir(parents=True)
    command = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
               "-c", str(ROOT / "book"), "-d", str(base / "doctrees")]
    for define in defines:
        command += ["-D", define]
    start = time.monotonic()
    run = subprocess.run([*command, str(base / "src"), str(base / "html")], cwd=ROOT,
                         capture_output=True, text=True)
    seconds = time.monotonic() - start
    assert run.returncode == 0, f"the build failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return base / "html", seconds


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """`folder` served on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
