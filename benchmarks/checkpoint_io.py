"""Save and load a 256 MB parameter set with d2l_utils.checkpoint against the raw limit.

    python benchmarks/checkpoint_io.py [--mb 256] [--repeat 5] [--dir DIR]

The raw limit is NumPy writing and reading the same bytes with `tofile`/`fromfile`. save_tensors
also fsyncs (its promise is that a crash never loses the checkpoint), so the raw write is
measured both without and with an fsync; the fair comparison is with. Prints the median of
each measurement and the ratios (raw time / our time: 1.0 means as fast as raw).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from d2l_utils.checkpoint import load_tensors, save_tensors


def params(mb: int) -> dict[str, np.ndarray]:
    """An MLP-like set of float32 tensors adding up to `mb` megabytes."""
    rng = np.random.default_rng(0)
    width = int(np.sqrt(mb * 2**20 / 4 / 4))  # four square layers
    out = {}
    for i in range(4):
        out[f"dense{i}.weight"] = rng.standard_normal((width, width), dtype=np.float32)
        out[f"dense{i}.bias"] = rng.standard_normal(width, dtype=np.float32)
    return out


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    tensors = params(args.mb)
    flat = np.concatenate([t.reshape(-1) for t in tensors.values()])
    size = flat.nbytes
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    raw, ours = folder / "raw.bin", folder / "ck.safetensors"

    def raw_save(sync):
        flat.tofile(raw)
        if sync:
            fd = os.open(raw, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    rows = {
        "raw save (tofile)": timed(lambda: raw_save(False), args.repeat),
        "raw save + fsync": timed(lambda: raw_save(True), args.repeat),
        "save_tensors": timed(lambda: save_tensors(ours, tensors), args.repeat),
        "raw load (fromfile)": timed(lambda: np.fromfile(raw, dtype=np.float32), args.repeat),
        "load_tensors": timed(lambda: load_tensors(ours), args.repeat),
    }
    print(f"{size / 2**20:.0f} MB of float32 parameters, median of {args.repeat}, in {folder}")
    print(f"{'operation':<22}{'seconds':>9}{'GB/s':>8}")
    for name, s in rows.items():
        print(f"{name:<22}{s:>9.3f}{size / s / 1e9:>8.2f}")
    print(f"save ratio (raw+fsync / save_tensors): {rows['raw save + fsync'] / rows['save_tensors']:.2f}")
    print(f"save ratio (raw, no fsync / save_tensors): {rows['raw save (tofile)'] / rows['save_tensors']:.2f}")
    print(f"load ratio (fromfile / load_tensors): {rows['raw load (fromfile)'] / rows['load_tensors']:.2f}")
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
