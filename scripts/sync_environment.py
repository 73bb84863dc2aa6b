"""Write the conda environment files from the locks (the pip route):
environment.yml from requirements.lock (d2l-io) and environment-mxnet.yml from
requirements-mxnet.lock (d2l-io-mxnet).

Both routes must install exactly the same pins; tests/test_environment.py fails when they
disagree. Run `make lock` (which calls this) or `python scripts/sync_environment.py`.

conda cannot pass `--no-deps` to pip, and d2l==1.0.3 pins 2023 versions that conflict with the
rest of a lock; so each file lists every pin except d2l, and its header (and the README's conda
instructions) install d2l and this repository's d2l_utils with `--no-deps` afterwards.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_DEPS = {"d2l"}  # installed by hand with --no-deps (see README)
#: conda file -> (lock, environment name, what to run after `conda env create`)
ENVIRONMENTS = {
    "environment.yml": ("requirements.lock", "d2l-io", [
        "# then: pip install --no-deps d2l==1.0.3 && pip install --no-deps -e .",
        "#       python -m d2l_utils.kernel --sys-prefix \\",
        "#         --mxnet-python \"$(conda run -n d2l-io-mxnet python -c 'import sys; print(sys.executable)')\"",
        "# (create d2l-io-mxnet first, from environment-mxnet.yml)",
    ]),
    "environment-mxnet.yml": ("requirements-mxnet.lock", "d2l-io-mxnet", [
        "# then: pip install --no-deps d2l==1.0.3 && pip install --no-deps -e .",
        "# (its kernel is registered from the d2l-io environment: see environment.yml)",
    ]),
}


def lock_pins(lock: str) -> list[str]:
    lines = (ROOT / lock).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def lock_python(lock: str) -> str:
    """The Python version the lock was resolved for, as its first line names it."""
    first = (ROOT / lock).read_text().splitlines()[0]
    match = re.search(r" for Python (\d+\.\d+) ", first)
    if not match:
        raise SystemExit(f"{lock}: its first line does not name its Python (run make lock)")
    return match[1]


def render(conda_file: str) -> str:
    lock, name, then = ENVIRONMENTS[conda_file]
    pins = [p for p in lock_pins(lock) if p.split("==")[0].lower() not in NO_DEPS]
    head = [
        f"# Generated from {lock} by scripts/sync_environment.py: do not edit.",
        f"# conda env create -f {conda_file} && conda activate {name}",
        *then,
        f"name: {name}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={lock_python(lock)}",
        "  - pip",
        "  - pip:",
    ]
    return "\n".join(head + [f"      - {p}" for p in pins]) + "\n"


if __name__ == "__main__":
    for conda_file in ENVIRONMENTS:
        (ROOT / conda_file).write_text(render(conda_file))
        print(f"wrote {conda_file}")
