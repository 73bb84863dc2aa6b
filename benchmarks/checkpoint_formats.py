"""Save and load one parameter set in every checkpoint format the workbook meets, against raw NumPy.

    python benchmarks/checkpoint_formats.py [--sizes 4,64,256,1024] [--repeat 5] [--dir DIR]
                                            [--plot benchmarks/checkpoint_formats.png] [--json PATH]

The parameter set is 8 equal float32 tensors of shape (w, w), w chosen so that they add up to
each size in MB (2**20 bytes), with the same seeded values in every format. The formats:

* raw: one flat array, ``tofile`` + fsync and ``np.fromfile``; the baseline of every ratio;
* d2l_utils: ``save_tensors`` (atomic, fsyncs itself), ``load_tensors`` in full, with
  ``names=[one]`` (1 of the 8 tensors) and with ``mmap=True``;
* safetensors: ``save_file`` + fsync, ``load_file``, ``safe_open(...).get_tensor`` (1 of 8);
* PyTorch: ``torch.save`` + fsync, ``torch.load(weights_only=True)``, and with ``mmap=True``;
* NumPy: ``np.savez`` + fsync, ``np.load`` with every array read;
* Orbax: ``StandardCheckpointer`` save + ``wait_until_finished`` + fsync of the folder it
  writes, ``restore`` (JAX on the CPU);
* Keras 3: ``save_weights`` + fsync and ``load_weights`` of 8 ``Dense(w, use_bias=False)``;
* MXNet: gluon ``save_parameters`` + fsync and ``load_parameters`` of the same 8 layers.

Every save ends with the file (or folder) and its parent folder fsynced, so a save is timed
until its checkpoint is on disk. Every parameter lives in host memory. **Loads read from the
page cache**: each repeat saves and then loads the file it just wrote, so they measure
parsing and copying, not the disk. The mmap loads map the file: ``torch.load``'s reads no
bytes until they are used, ``load_tensors``'s reads each tensor once to verify its checksum. Each format runs in its own subprocess (this script with ``--worker``), so frameworks
are not imported together and their memory is freed; what every load returns in the first
repeat is checked against the original values. Times are the best of ``--repeat`` runs (on
a shared 2-core machine one slow run in three is common; the best run is the least disturbed);
ratios are raw time / format time (1.0: as fast as raw, higher: faster). A failing format
shows as an error row and the script exits with status 1 at the end. The goals at the end
are reported, not enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LAYERS = 8
NAMES = [f"dense{i}.weight" for i in range(LAYERS)]
PART = NAMES[3]  # the tensor of the "1 of 8" loads
WORKERS = ("raw", "d2l_utils", "safetensors", "torch", "numpy", "orbax", "keras", "mxnet")
# row key -> label; the order of the tables and the plot
ROWS = {
    "raw": "raw tofile/fromfile",
    "d2l": "d2l_utils save/load_tensors",
    "d2l_mmap": "d2l_utils load_tensors mmap",
    "safetensors": "safetensors save/load_file",
    "torch": "torch.save/load",
    "torch_mmap": "torch.load mmap",
    "savez": "np.savez/load",
    "orbax": "Orbax StandardCheckpointer",
    "keras": "Keras .weights.h5",
    "mxnet": "MXNet save/load_parameters",
}
NATIVE = ("torch", "orbax", "keras", "mxnet")  # the frameworks' own formats d2l_utils should beat
COLUMNS = ("save", "load", "partial")

Params = dict[str, np.ndarray]


# ---------------------------------------------------------------- the worker (one format, one size)

def width(mb: int) -> int:
    """The side of the 8 square float32 tensors that add up to `mb` MB."""
    return max(1, round((mb * 2**20 / LAYERS / 4) ** 0.5))


def make_params(mb: int) -> Params:
    rng = np.random.default_rng(0)
    w = width(mb)
    return {name: rng.standard_normal((w, w), dtype=np.float32) for name in NAMES}


def width_of(params: Params) -> int:
    return next(iter(params.values())).shape[0]


def fsync(path: Path) -> None:
    """fsync a file, or a folder and everything in it, then the parent folder."""
    paths = [path] if path.is_file() else [*path.rglob("*"), path]
    for p in [*paths, path.parent]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def verify(got: Mapping[str, Any], expected: Mapping[str, np.ndarray],
           to_numpy: Callable[[Any], np.ndarray] = np.asarray) -> None:
    """Raise unless `got` holds exactly the names of `expected` with equal values."""
    if sorted(got) != sorted(expected):
        raise AssertionError(f"loaded {sorted(got)}, expected {sorted(expected)}")
    for name, value in got.items():
        array = to_numpy(value)
        if array.dtype != expected[name].dtype or not np.array_equal(array, expected[name]):
            raise AssertionError(f"{name}: the loaded values differ from the saved ones")


@dataclass
class Op:
    """One timed operation: a cell (row, column) of the table; `check` verifies its result."""

    row: str
    column: str
    run: Callable[[], Any]
    check: Callable[[Any], None] | None = None


def measure(ops: list[Op], folder: Path, repeat: int) -> tuple[dict, dict[str, str]]:
    """Run the ops in order `repeat` times, `folder` emptied before each round; the first
    round's results are checked. Returns ({row: {column: best s}}, {"row.column": error})."""
    times: dict[tuple[str, str], list[float]] = {}
    errors: dict[str, str] = {}
    for i in range(repeat):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for op in ops:
            key = f"{op.row}.{op.column}"
            if key in errors:
                continue
            try:
                t0 = time.perf_counter()
                result = op.run()
                elapsed = time.perf_counter() - t0
                if i == 0 and op.check is not None:
                    op.check(result)
            except Exception as err:  # noqa: BLE001  (reported, and the script exits 1)
                errors[key] = f"{type(err).__name__}: {err}"
                continue
            finally:
                result = None
            times.setdefault((op.row, op.column), []).append(elapsed)
    rows: dict[str, dict[str, float]] = {}
    for (row, column), ts in times.items():
        rows.setdefault(row, {})[column] = min(ts)
    return rows, errors


def raw_ops(params: Params, folder: Path) -> list[Op]:
    flat = np.concatenate([a.reshape(-1) for a in params.values()])
    path = folder / "raw.bin"

    def save() -> None:
        flat.tofile(path)
        fsync(path)

    return [Op("raw", "save", save),
            Op("raw", "load", lambda: np.fromfile(path, dtype=np.float32),
               lambda got: verify({"flat": got}, {"flat": flat}))]


def d2l_ops(params: Params, folder: Path) -> list[Op]:
    from d2l_utils.checkpoint import load_tensors, save_tensors

    path = folder / "d2l.safetensors"
    return [Op("d2l", "save", lambda: save_tensors(path, params)),
            Op("d2l", "load", lambda: load_tensors(path)[0], lambda got: verify(got, params)),
            Op("d2l", "partial", lambda: load_tensors(path, names=[PART])[0],
               lambda got: verify(got, {PART: params[PART]})),
            Op("d2l_mmap", "load", lambda: load_tensors(path, mmap=True)[0],
               lambda got: verify(got, params))]


def safetensors_ops(params: Params, folder: Path) -> list[Op]:
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = folder / "st.safetensors"

    def save() -> None:
        save_file(params, path)
        fsync(path)

    def part() -> Params:
        with safe_open(path, "numpy") as f:
            return {PART: f.get_tensor(PART)}

    return [Op("safetensors", "save", save),
            Op("safetensors", "load", lambda: load_file(path), lambda got: verify(got, params)),
            Op("safetensors", "partial", part, lambda got: verify(got, {PART: params[PART]}))]


def torch_ops(params: Params, folder: Path) -> list[Op]:
    import torch

    state = {name: torch.from_numpy(a) for name, a in params.items()}
    path = folder / "state.pt"

    def save() -> None:
        torch.save(state, path)
        fsync(path)

    def check(got: Mapping[str, Any]) -> None:
        verify(got, params, lambda t: t.numpy())

    return [Op("torch", "save", save),
            Op("torch", "load", lambda: torch.load(path, weights_only=True), check),
            Op("torch_mmap", "load", lambda: torch.load(path, weights_only=True, mmap=True), check)]


def numpy_ops(params: Params, folder: Path) -> list[Op]:
    path = folder / "arrays.npz"

    def save() -> None:
        np.savez(path, **params)
        fsync(path)

    def load() -> Params:
        with np.load(path) as z:
            return {name: z[name] for name in z.files}

    return [Op("savez", "save", save), Op("savez", "load", load, lambda got: verify(got, params))]


def orbax_ops(params: Params, folder: Path) -> list[Op]:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # parameters in host memory, as elsewhere
    import jax
    import orbax.checkpoint as ocp

    state = {name: jax.numpy.asarray(a) for name, a in params.items()}
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    checkpointer = ocp.StandardCheckpointer()
    path = folder.absolute() / "orbax"  # Orbax wants an absolute path; it must not exist

    def save() -> None:
        checkpointer.save(path, state)
        checkpointer.wait_until_finished()
        fsync(path)

    def load() -> dict[str, Any]:
        return jax.block_until_ready(checkpointer.restore(path, target))

    return [Op("orbax", "save", save), Op("orbax", "load", load, lambda got: verify(got, params))]


def keras_ops(params: Params, folder: Path) -> list[Op]:
    import keras

    w = width_of(params)
    model = keras.Sequential([keras.Input((w,))] + [
        keras.layers.Dense(w, use_bias=False, kernel_initializer="zeros", name=f"dense{i}")
        for i in range(LAYERS)])
    for layer, name in zip(model.layers, NAMES):
        layer.kernel.assign(params[name])  # Dense kernels are (in, out): any (w, w) fits
    path = folder / "model.weights.h5"

    def save() -> None:
        model.save_weights(path)
        fsync(path)

    def load() -> dict[str, Any]:
        model.load_weights(path)
        return {name: layer.kernel for layer, name in zip(model.layers, NAMES)}

    return [Op("keras", "save", save),
            Op("keras", "load", load,
               lambda got: verify(got, params, keras.ops.convert_to_numpy))]


def mxnet_ops(params: Params, folder: Path) -> list[Op]:
    from d2l_utils.mxnet import mxnet as mx  # restores numpy.bool, which MXNet 1.9.1 needs
    from mxnet.gluon import nn

    w = width_of(params)
    net = nn.Sequential()
    for _ in range(LAYERS):
        net.add(nn.Dense(w, use_bias=False, in_units=w))
    net.initialize(mx.init.Zero())
    weights = list(net.collect_params().values())
    for param, name in zip(weights, NAMES):
        param.set_data(mx.nd.array(params[name], dtype=np.float32))
    mx.nd.waitall()
    path = folder / "net.params"

    def save() -> None:
        net.save_parameters(str(path))
        fsync(path)

    def load() -> dict[str, Any]:
        net.load_parameters(str(path))
        mx.nd.waitall()  # MXNet copies asynchronously
        return {name: p.data() for p, name in zip(weights, NAMES)}

    return [Op("mxnet", "save", save),
            Op("mxnet", "load", load, lambda got: verify(got, params, lambda a: a.asnumpy()))]


OPS: dict[str, Callable[[Params, Path], list[Op]]] = {
    "raw": raw_ops, "d2l_utils": d2l_ops, "safetensors": safetensors_ops, "torch": torch_ops,
    "numpy": numpy_ops, "orbax": orbax_ops, "keras": keras_ops, "mxnet": mxnet_ops}


def worker(name: str, mb: int, repeat: int, parent: Path) -> int:
    """Measure one format at one size; print one JSON line; exit status 1 on any error."""
    folder = parent / f"{name}-{mb}"
    params = make_params(mb)
    try:
        ops = OPS[name](params, folder)
        rows, errors = measure(ops, folder, repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("RESULT " + json.dumps({"rows": rows, "errors": errors}), flush=True)
    return 1 if errors else 0


# ---------------------------------------------------------------- the driver

@dataclass
class Result:
    """Every measurement: times[mb][row][column] in seconds; failed[mb]: the "row.column"
    cells that raised; errors: printable lines."""

    nbytes: dict[int, int]
    times: dict[int, dict[str, dict[str, float]]]
    failed: dict[int, set[str]]
    errors: list[str]


def run_worker(name: str, mb: int, repeat: int, folder: Path, timeout: float
               ) -> tuple[dict[str, dict[str, float]], set[str], list[str]]:
    """Run one worker: (its rows, its failed cells, error lines)."""
    # MXNet 1.9.1 has its own environment (NumPy 1.x), whose interpreter its kernel names.
    python = sys.executable
    if name == "mxnet":
        from d2l_utils.kernel import python as kernel_python

        python = kernel_python("d2l-io-mxnet")
    cmd = [python, str(Path(__file__).resolve()), "--worker", name, "--mb", str(mb),
           "--repeat", str(repeat), "--dir", str(folder)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}, set(), [f"{mb} MB {name}: worker timed out after {timeout:.0f} s"]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {}, set(), [f"{mb} MB {name}: worker failed (exit {proc.returncode}): {tail}"]
    data = json.loads(lines[-1][len("RESULT "):])
    errors = [f"{mb} MB {ROWS[key.split('.')[0]]} {key.split('.')[1]}: {msg}"
              for key, msg in data["errors"].items()]
    if proc.returncode and not errors:
        errors.append(f"{mb} MB {name}: worker exited {proc.returncode}")
    return data["rows"], set(data["errors"]), errors


def run_all(sizes: list[int], repeat: int, folder: Path, timeout: float) -> Result:
    result = Result({mb: LAYERS * width(mb) ** 2 * 4 for mb in sizes}, {}, {}, [])
    for mb in sizes:
        result.times[mb], result.failed[mb] = {}, set()
        for name in WORKERS:
            t0 = time.perf_counter()
            rows, failed, errors = run_worker(name, mb, repeat, folder, timeout)
            result.times[mb].update(rows)
            result.failed[mb] |= failed
            result.errors += errors
            status = "ERROR" if errors else "ok"
            print(f"  {mb} MB {name}: {status} ({time.perf_counter() - t0:.1f} s)",
                  file=sys.stderr, flush=True)
    return result


def ratio(base: float | None, t: float | None) -> float | None:
    return base / t if base and t else None


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(result: Result, mb: int, repeat: int) -> str:
    times = result.times[mb]
    raw = times.get("raw", {})
    nbytes = result.nbytes[mb]
    w = width(mb)
    lines = [f"{mb} MB: {LAYERS} float32 tensors of {w}x{w} = {nbytes / 2**20:.1f} MB, "
             f"best of {repeat}; loads read from the page cache",
             f"{'format':<30}{'save s':>9}{'load s':>9}{'save/raw':>10}{'load/raw':>10}"
             f"{'1of8 s':>9}{'of full':>9}"]
    for key, label in ROWS.items():
        row = times.get(key)
        if row is None:
            lines.append(f"{label:<30}{'ERROR (see below)':>27}")
            continue
        save, load, part = (row.get(c) for c in COLUMNS)
        cells = [fmt(save, ".3f"), fmt(load, ".3f"), fmt(ratio(raw.get("save"), save), ".2f"),
                 fmt(ratio(raw.get("load"), load), ".2f"), fmt(part, ".3f"),
                 fmt(part / load if part and load else None, ".2f")]
        for column, (i, j) in {"save": (0, 2), "load": (1, 3), "partial": (4, 5)}.items():
            if f"{key}.{column}" in result.failed[mb]:
                cells[i] = cells[j] = "ERROR"
        widths = (9, 9, 10, 10, 9, 9)
        lines.append(f"{label:<30}" + "".join(f"{c:>{n}}" for c, n in zip(cells, widths)))
    return "\n".join(lines)


def verdict(checks: list[bool | None]) -> bool | None:
    """False if any check failed, else None if any is missing (or there are none), else True."""
    return False if False in checks else None if None in checks or not checks else True


def goals(result: Result) -> list[tuple[str, bool | None, str]]:
    """(goal, passed or None when not measured, the numbers)."""
    sizes = sorted(result.times)

    def get(mb: int, row: str, column: str) -> float | None:
        return result.times[mb].get(row, {}).get(column)

    def every(name: str, values: dict[int, float | None], good: Callable[[float], bool],
              spec: str) -> tuple[str, bool | None, str]:
        known = {mb: v for mb, v in values.items() if v is not None}
        missing = [f"{mb} MB" for mb in values if mb not in known]
        text = ", ".join(f"{mb} MB {v:{spec}}" for mb, v in known.items())
        if missing:
            text += "; missing (error) at " + ", ".join(missing)
        return name, verdict([good(v) for v in known.values()] + [None] * len(missing)), text

    out = [
        every("d2l_utils save >= 0.95x raw write+fsync",
              {mb: ratio(get(mb, "raw", "save"), get(mb, "d2l", "save")) for mb in sizes},
              lambda r: r >= 0.95, ".2f"),
        every("d2l_utils full load >= 1.0x raw read",
              {mb: ratio(get(mb, "raw", "load"), get(mb, "d2l", "load")) for mb in sizes},
              lambda r: r >= 1.0, ".2f"),
    ]
    big = [mb for mb in sizes if mb >= 256]
    name = "d2l_utils ahead of torch, Orbax, Keras, MXNet at >= 256 MB (save and load)"
    if not big:
        out.append((name, None, "not measured (needs --sizes with 256 and 1024)"))
    else:
        wins, notes = [], []
        for mb, column in ((mb, c) for mb in big for c in ("save", "load")):
            ours = get(mb, "d2l", column)
            theirs = {fw: s for fw in NATIVE if (s := get(mb, fw, column)) is not None}
            missing = [fw for fw in NATIVE if fw not in theirs] + ["d2l"] * (ours is None)
            if missing:
                wins.append(None)
                notes.append(f"{mb} MB {column}: {', '.join(missing)} missing (error)")
            if ours is not None and theirs:
                best = min(theirs, key=lambda fw: theirs[fw])
                wins.append(ours < theirs[best])
                notes.append(f"{mb} MB {column} {ours:.3f} s, fastest framework "
                             f"{best} {theirs[best]:.3f} s")
        out.append((name, verdict(wins), "; ".join(notes)))
    out.append(every("d2l_utils 1-of-8 load <= 1/4 of a full load",
                     {mb: (get(mb, "d2l", "partial") / get(mb, "d2l", "load")
                           if get(mb, "d2l", "partial") and get(mb, "d2l", "load") else None)
                      for mb in sizes},
                     lambda f: f <= 0.25, ".2f"))
    return out


def plot(result: Result, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(result.times)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharex=True)
    for ax, column in zip(axes, ("save", "load")):
        for i, (key, label) in enumerate(ROWS.items()):
            points = [(result.nbytes[mb] / 2**20, result.nbytes[mb] / s / 1e9) for mb in sizes
                      if (s := result.times[mb].get(key, {}).get(column))]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, "--" if key.endswith("_mmap") else "-", marker="o",
                        color="black" if key == "raw" else f"C{i - 1}",
                        label=label + (" (mapped)" if key.endswith("_mmap") else ""))
        ax.set(xscale="log", yscale="log", xlabel="checkpoint size (MB)", ylabel="GB/s",
               title="save (until fsynced)" if column == "save" else "load (from the page cache)")
        ax.set_xticks([result.nbytes[mb] / 2**20 for mb in sizes], [str(mb) for mb in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,64,256,1024", help="MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=REPO / "scratch",
                        help="a temporary folder is made (and removed) in it")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "checkpoint_formats.png")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--mb", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.mb, args.repeat, args.dir)

    sizes = [int(s) for s in args.sizes.split(",")]
    args.dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="checkpoint_formats.", dir=args.dir))
    try:
        result = run_all(sizes, args.repeat, folder, args.timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    for mb in sizes:
        print(table(result, mb, args.repeat), end="\n\n")
    print("save/raw = raw tofile+fsync time / save time, load/raw = raw fromfile time / load time "
          "(1.0: as fast as raw, higher: faster); 1of8 = one of the 8 tensors; mmap loads map the "
          "file (torch's reads nothing, d2l_utils' verifies every tensor once)")
    checked = goals(result)
    print("\nGoals:")
    for name, ok, numbers in checked:
        print(f"  {'n/a ' if ok is None else 'PASS' if ok else 'MISS'}  {name}: {numbers}")
    passed = sum(ok is True for _, ok, _ in checked)
    print(f"Summary: {passed}/{len(checked)} goals PASS, "
          f"{sum(ok is False for _, ok, _ in checked)} MISS, "
          f"{sum(ok is None for _, ok, _ in checked)} not measured; {len(result.errors)} errors")
    plot(result, args.plot)
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps({
            "repeat": args.repeat, "bytes": result.nbytes, "seconds": result.times,
            "goals": [{"goal": n, "pass": ok, "numbers": s} for n, ok, s in checked],
            "errors": result.errors}, indent=1))
    if result.errors:
        print("\nErrors:", *result.errors, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
