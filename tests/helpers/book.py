"""The website as `make book` builds it (into a folder of the test's own), and a web server
for it on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import subprocess
import threading
import time
from pathlib import Path

from conftest import ROOT
from helpers.lab_session import skip_unless_ci

PACKAGES = ("sphinx", "myst_nb", "sphinx_design", "sphinx_book_theme", "bs4")


def require_book_packages() -> None:
    """Skip the calling test module without the site's packages, except under CI=true."""
    missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        skip_unless_ci(f"the website's packages are not installed: {', '.join(missing)}")


def build(base: Path, hub: str = "", repo: str = "") -> tuple[Path, float]:
    """The site built by `make book` (with HUB and REPO when given) into base/html; returns
    that folder and the build's wall time in seconds (a failure shows what make printed)."""
    command = ["make", "--no-print-directory", "book", f"BOOK_BUILD={base}", f"HUB={hub}"]
    if repo:
        command.append(f"REPO={repo}")
    start = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
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
