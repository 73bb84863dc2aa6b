"""The programs notebooks/sharded-checkpoints.ipynb runs and shows, one per framework:

- ``python -m d2l_utils.sharded.torch_dcp`` (under ``torchrun``): an MLP sharded with FSDP2,
  saved and loaded with torch.distributed.checkpoint;
- ``python -m d2l_utils.sharded.jax_orbax``: the MLP's parameters sharded over CPU devices,
  saved and restored with Orbax, a CheckpointManager run that can be killed mid-save.

Importing this package imports neither framework (``jax_orbax`` sets the CPU device count
before it imports JAX: ``four_cpu_devices``).
"""

import os
from pathlib import Path

import d2l_utils


def four_cpu_devices() -> None:
    """Ask JAX for four CPU devices. Effective only before JAX starts its CPU backend: it
    reads the flag once, then."""
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_force_host_platform_device_count=4").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def output_folder(name: str) -> Path:
    """`name` below the scratch folder (created); anything else is refused."""
    scratch = d2l_utils.scratch_dir()
    out = (scratch / name).resolve()
    if not out.is_relative_to(scratch):
        raise SystemExit(f"{name}: the output folder must be below the scratch folder {scratch}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def message(err: BaseException) -> str:
    """The first line of an exception's message ("" if it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


def first_line(err: BaseException) -> str:
    """An exception as one readable line: its type and the first line of its message."""
    text = message(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
