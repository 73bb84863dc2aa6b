"""The end of `make lock`: for every framework, the version each lock holds and the newest
release the package index serves as a wheel for Linux x86-64 on each Python version, so the
next move is visible (a release the locks' Python cannot install shows as newer elsewhere).

    .venv/bin/python scripts/newest_releases.py [--python 3.11 3.12 3.13 3.14]

Asks the index through `uv pip compile --no-deps --only-binary :all:`, once per Python
(a package with no wheel for a Python shows "-"; MXNet's 1.9.1 wheel is tagged for any
Python 3, so the index offers it everywhere although it installs only up to 3.11 with its
NumPy 1.x). Needs the network, as `make lock` does.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("numpy", "torch", "tensorflow-cpu", "keras", "jax", "jaxlib", "flax", "optax",
              "orbax-checkpoint", "safetensors", "mxnet")
LOCKS = {"d2l-io": REPO / "requirements.lock", "d2l-io-mxnet": REPO / "requirements-mxnet.lock"}


def locked(path: Path) -> dict[str, str]:
    """name -> version pinned in a lock."""
    pins = (re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line) for line in path.read_text().splitlines())
    return {m[1].lower(): m[2] for m in pins if m}


def newest(packages: tuple[str, ...], python: str) -> dict[str, str]:
    """package -> the newest version with a wheel for `python` on Linux x86-64 ("-" if none):
    all packages in one question, and one at a time if that fails (one has no wheel)."""
    uv = Path(sys.executable).parent / "uv"
    proc = subprocess.run([str(uv), "pip", "compile", "--quiet", "--no-deps", "--no-header",
                           "--no-annotate", "--only-binary", ":all:", "--python-version", python,
                           "--python-platform", "x86_64-manylinux_2_28", "-"],
                          input="\n".join(packages) + "\n", capture_output=True, text=True)
    if proc.returncode != 0 and len(packages) > 1:
        return {k: v for p in packages for k, v in newest((p,), python).items()}
    found = {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", proc.stdout, re.M)}
    return {p: found.get(p, "-") for p in packages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", nargs="+", default=["3.11", "3.12", "3.13", "3.14"])
    args = parser.parse_args()
    pins = {env: locked(path) for env, path in LOCKS.items()}
    found = {(p, v): version for v in args.python for p, version in newest(FRAMEWORKS, v).items()}
    head = f"{'package':<18}" + "".join(f"{env:>14}" for env in LOCKS) + "".join(
        f"{'newest ' + v:>14}" for v in args.python)
    print("Locked, and the newest wheel the index serves per Python:")
    print(head)
    for package in FRAMEWORKS:
        row = f"{package:<18}" + "".join(f"{pins[env].get(package, '-'):>14}" for env in LOCKS)
        row += "".join(f"{found[(package, v)]:>14}" for v in args.python)
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
