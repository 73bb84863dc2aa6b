"""Write environment.yml (the conda route) from requirements.lock (the pip route).

Both routes must install exactly the same pins; tests/test_environment.py fails when the two
files disagree. Run `make lock` (which calls this) or `python scripts/sync_environment.py`.

conda cannot pass `--no-deps` to pip, and d2l==1.0.3 pins 2023 versions that conflict with the
rest of the lock; so environment.yml lists every pin except d2l, and the README's conda
instructions install d2l (and this repository's d2l_utils) with `--no-deps` afterwards.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_DEPS = {"d2l"}  # installed by hand with --no-deps (see README)


def lock_pins() -> list[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def render() -> str:
    pins = [p for p in lock_pins() if p.split("==")[0].lower() not in NO_DEPS]
    head = [
        "# Generated from requirements.lock by scripts/sync_environment.py: do not edit.",
        "# conda env create -f environment.yml && conda activate d2l-io",
        "# then: pip install --no-deps d2l==1.0.3 && pip install --no-deps -e .",
        "#       python -m d2l_utils.kernel --sys-prefix",
        "name: d2l-io",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    return "\n".join(head + [f"      - {p}" for p in pins]) + "\n"


if __name__ == "__main__":
    (ROOT / "environment.yml").write_text(render())
    print("wrote environment.yml")
