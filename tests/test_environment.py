"""Two pinned environments, each installed exactly as locked, by pip (the lock) or by conda
(its environment file): d2l-io (requirements.lock, environment.yml) and d2l-io-mxnet
(requirements-mxnet.lock, environment-mxnet.yml)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from conftest import LONGEST_FIRST, ROOT, python_for

# conda file -> lock, environment name, the framework whose kernel runs that environment
ENVS = {"environment.yml": ("requirements.lock", "d2l-io", "pytorch"),
        "environment-mxnet.yml": ("requirements-mxnet.lock", "d2l-io-mxnet", "mxnet")}
PROBE = """
import json, sys
from importlib import metadata
found = {}
for name in json.loads(sys.argv[1]):
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = None
print(json.dumps(["%d.%d" % sys.version_info[:2], found]))
"""


def _lock(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{lock}: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    return pins


def _conda(conda_file: str) -> dict:
    return yaml.safe_load((ROOT / conda_file).read_text())


@pytest.mark.parametrize("conda_file", ENVS)
def test_conda_file_matches_its_lock(conda_file):
    lock_file, name, _ = ENVS[conda_file]
    lock, env = _lock(lock_file), _conda(conda_file)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = {p.split("==")[0].lower().replace("_", "-"): p.split("==")[1] for p in pip}
    # d2l is installed with --no-deps after conda (its 2023 pins conflict); the file says how.
    assert conda == {k: v for k, v in lock.items() if k != "d2l"}
    assert f"pip install --no-deps d2l=={lock['d2l']}" in (ROOT / conda_file).read_text()
    assert env["name"] == name and f"python={_lock_python(lock_file)}" in env["dependencies"]


def _lock_python(lock: str) -> str:
    """The Python the lock was resolved for, as its first line (written by `make lock`) says."""
    match = re.search(r" for Python (\d+\.\d+) ", (ROOT / lock).read_text().splitlines()[0])
    assert match, f"{lock}: the first line does not name its Python"
    return match[1]


def test_the_environments_split_where_mxnet_needs_it():
    main, mxnet = _lock("requirements.lock"), _lock("requirements-mxnet.lock")
    assert "mxnet" not in main and mxnet["mxnet"] == "1.9.1"
    assert main["numpy"].startswith("2.") and mxnet["numpy"].startswith("1.26")
    assert not {"torch", "tensorflow-cpu", "jax"} & set(mxnet)  # only what MXNet's side needs
    # MXNet 1.9.1 stops at Python 3.11; the rest is on the newest Python all its packages serve.
    assert (_lock_python("requirements.lock"), _lock_python("requirements-mxnet.lock")) == ("3.13", "3.11")


@pytest.mark.parametrize("conda_file", ENVS)
def test_installed_environment_is_the_lock(conda_file):
    """Each environment has exactly the locked versions of everything in its lock."""
    lock_file, _, framework = ENVS[conda_file]
    lock = _lock(lock_file)
    out = subprocess.run([python_for(framework), "-c", PROBE, json.dumps(sorted(lock))],
                         capture_output=True, text=True, check=True).stdout
    python, have = json.loads(out)
    assert python == _lock_python(lock_file), f"{lock_file} is for Python {_lock_python(lock_file)}"
    wrong = {name: (version, have[name]) for name, version in lock.items()
             if have[name] is None or have[name].split("+")[0] != version.split("+")[0]}
    assert not wrong, f"installed versions differ from {lock_file}: {wrong}"


def test_the_longest_files_named_for_scheduling_exist():
    """conftest.LONGEST_FIRST puts these files at the head of `make test`'s queue; a renamed
    file would silently fall back to the end."""
    missing = [p for p in LONGEST_FIRST if not (ROOT / p).is_file()]
    assert missing == [], f"conftest.LONGEST_FIRST names files that do not exist: {missing}"
