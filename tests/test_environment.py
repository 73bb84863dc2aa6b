"""One pinned environment: requirements.lock and environment.yml install the same pins."""

from __future__ import annotations

from importlib import metadata

import yaml

from conftest import ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    return pins


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {p.split("==")[0].lower().replace("_", "-"): p.split("==")[1] for p in pip}


def test_environment_yml_matches_lock():
    lock = _lock()
    conda = _conda_pins()
    # d2l is installed with --no-deps after conda (its 2023 pins conflict); the yml says how.
    assert conda == {k: v for k, v in lock.items() if k != "d2l"}
    header = (ROOT / "environment.yml").read_text()
    assert f"pip install --no-deps d2l=={lock['d2l']}" in header


def test_python_version_matches():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_installed_environment_is_the_lock():
    """The running environment has exactly the locked versions of everything in the lock."""
    lock = _lock()
    wrong = {}
    for name, version in lock.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have is None or have.split("+")[0] != version.split("+")[0]:
            wrong[name] = (version, have)
    assert not wrong, f"installed versions differ from requirements.lock: {wrong}"
