"""The workbook's MLP with its parameters sharded over four CPU devices, saved with Orbax,
restored onto other meshes, and checkpointed every k steps by a CheckpointManager.
Run (or imported, before JAX starts) by notebooks/sharded-checkpoints.ipynb, and run by
tests/test_sharded_checkpoints.py:

    python -m d2l_utils.sharded.jax_orbax reshard OUT              # save on 4 devices, restore on 2 and on 1
    python -m d2l_utils.sharded.jax_orbax train OUT [--steps 12 --every 3 --keep 2] [--die-after-save 9]
    python -m d2l_utils.sharded.jax_orbax resume OUT [...]         # restart from the newest finished save
    python -m d2l_utils.sharded.jax_orbax check OUT...             # restore each newest save, compare, print JSON

OUT is a folder below the scratch folder (d2l_utils.scratch_dir(), $D2L_SCRATCH). JAX sees
one CPU device unless told otherwise before it starts: this module asks for four, first thing.
"""

from __future__ import annotations

from d2l_utils.sharded import four_cpu_devices

four_cpu_devices()  # before JAX is imported

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import stat  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
from jax.sharding import AxisType, NamedSharding, SingleDeviceSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import d2l_utils  # noqa: E402
from d2l_utils.checkpoint import CheckpointError  # noqa: E402
from d2l_utils.sharded import first_line, output_folder  # noqa: E402

SIZES = (20, 64, 32, 10)  # the workbook's MLP: 20 -> 64 -> 32 -> 10
LR = 0.1


def init(sizes=SIZES, seed=0) -> dict:
    """Parameters named as Flax's MulMLP(10, (64, 32), lr).init(...) names them: a pytree
    of arrays, which is all Orbax needs to know about a model. (Made with NumPy: JAX would
    compile every one of these small operations before running it.)"""
    rng = np.random.default_rng(seed)
    return {"params": {f"Dense_{i}": {
        "kernel": (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
        "bias": np.zeros(b, np.float32)} for i, (a, b) in enumerate(zip(sizes, sizes[1:]))}}


def forward(params, X):
    *hidden, last = params["params"].values()
    for layer in hidden:
        X = jax.nn.relu(X @ layer["kernel"] + layer["bias"])
    return X @ last["kernel"] + last["bias"]


def data():
    """The training batch, and the fixed input on which outputs are compared."""
    X, y = d2l_utils.make_classification(n=256, num_inputs=SIZES[0], num_classes=SIZES[-1])
    return jnp.asarray(X), jnp.asarray(y), jnp.asarray(X[:8])


def mesh_of(n: int):
    """A one-axis mesh "x" over the first n devices. Auto axes: jit decides how the
    intermediate results are sharded (in the explicit mode, jax.make_mesh's default, the
    program must say it for every operation)."""
    return jax.make_mesh((n,), ("x",), (AxisType.Auto,), devices=jax.devices()[:n])


def shardings(params, mesh):
    """Split each array's first axis over the mesh's devices where it divides evenly; else
    keep a full copy on every device (a bias of 10 over 4 devices)."""
    n = mesh.devices.size
    return jax.tree.map(lambda a: NamedSharding(mesh, P("x") if a.shape[0] % n == 0 else P()),
                        params)


@functools.cache
def trainer(sizes=SIZES):
    """The sharding of the MLP's parameters on 4 devices, and one full-batch SGD step that
    keeps them so (compiled once per size of MLP)."""
    sharding = shardings(init(sizes), mesh_of(4))
    X, y, _ = data()

    def loss(params):
        logits = forward(params, X)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    @jax.jit
    def step(params):
        new = jax.tree.map(lambda p, g: p - LR * g, params, jax.grad(loss)(params))
        return jax.lax.with_sharding_constraint(new, sharding)

    return sharding, step


def describe(tree) -> list[str]:
    """Each array: its shape, its partition spec, and the pieces the devices hold."""
    lines = []
    for path, a in jax.tree_util.tree_leaves_with_path(tree):
        name = "/".join(str(k.key) for k in path[1:])
        spec = a.sharding.spec if isinstance(a.sharding, NamedSharding) else "one device"
        pieces = sorted({tuple(s.data.shape) for s in a.addressable_shards})
        lines.append(f"  {name:<15} {str(a.shape):<9} {str(spec):<11} "
                     f"{len(a.addressable_shards)} x {', '.join(map(str, pieces))}")
    return lines


def abstract(params, sharding=None):
    """What to restore: the shape, dtype and *target* sharding of every array (without
    `sharding`: all of each array on the first device)."""
    if sharding is None:
        sharding = jax.tree.map(lambda _: SingleDeviceSharding(jax.devices()[0]), params)
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        params, sharding)


def _leaves(tree) -> dict:
    leaves = jax.tree.leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return {"/".join(str(k.key) for k in path): leaf for path, leaf in leaves}


#: Orbax's metadata files, each one JSON object (no checksum of their own).
METADATA_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding")
#: The suffix of a save cut off mid-way: the manager ignores it, and deletes it when it next starts.
TMP = ".orbax-checkpoint-tmp"


def check_folder(folder: Path) -> None:
    """Check a checkpoint folder before Orbax reads anything of it, in one walk:
    - it holds folders and regular files only: Orbax and TensorStore would block forever
      reading a FIFO, and follow links out of the folder;
    - Orbax's metadata files (outside saves cut off mid-way) are named when damaged: each must
      be one JSON object; an item's folder (the one with array_metadatas/) needs its
      _METADATA, holding the tree."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise CheckpointError(folder, "not a checkpoint folder")
    for root, dirs, files in os.walk(folder):
        root = Path(root)
        for name in dirs + files:
            mode = (root / name).lstat().st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise CheckpointError(root / name, "not a regular file or folder")
        if any(part.endswith(TMP) for part in root.relative_to(folder).parts):
            continue
        for name in files:
            if name not in METADATA_FILES and root.name != "array_metadatas":
                continue
            try:
                value = json.loads((root / name).read_bytes().decode())
            except Exception as err:
                raise CheckpointError(root / name, f"not valid JSON ({first_line(err)})") from None
            if not isinstance(value, dict):
                raise CheckpointError(root / name, f"holds a JSON {type(value).__name__}, "
                                                   "not an object")
            if name == "_METADATA" and "tree_metadata" not in value:
                raise CheckpointError(root / name, "has no tree_metadata")
            if name == "_sharding":  # one JSON text per array, inside the object
                for key, text in value.items():
                    try:
                        json.loads(text)
                    except Exception as err:
                        raise CheckpointError(root / name, f"the sharding of {key} is not valid "
                                                           f"JSON ({first_line(err)})") from None
        if "array_metadatas" in dirs and "_METADATA" not in files:  # an item's folder
            raise CheckpointError(root / "_METADATA", "missing")


def restore_checked(read, stored, path: Path, target):
    """`read(target)`, after checking the checkpoint's tree (`stored`, its metadata: no array
    is read) against the target's names, shapes and dtypes. Every problem, then or while
    reading, is one CheckpointError naming the checkpoint and the array or file. The caller
    has checked the folder (check_folder) before reading `stored`: see restore."""
    have, want = _leaves(stored), _leaves(target)
    for name in sorted(have.keys() | want.keys()):
        if name not in have or name not in want:
            where = "the checkpoint's metadata" if name not in have else "the target"
            raise CheckpointError(path, f"{name}: not in {where}")
        if (tuple(have[name].shape), np.dtype(have[name].dtype)) != (
                tuple(want[name].shape), np.dtype(want[name].dtype)):
            raise CheckpointError(path, f"{name}: the checkpoint holds {have[name].dtype}"
                                        f"{list(have[name].shape)}, the target "
                                        f"{want[name].dtype}{list(want[name].shape)}")
    try:
        return read(target)
    except Exception as err:  # TensorStore's innermost error names the array and the chunk
        while err.__cause__ is not None or err.__context__ is not None:
            err = err.__cause__ or err.__context__
        raise CheckpointError(path, f"reading failed ({first_line(err)})") from None


def equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def restore(path: Path, target):
    """Restore the checkpoint at `path` as `target` says (see abstract), checked first."""
    check_folder(path)
    with ocp.StandardCheckpointer() as ckptr:
        try:
            stored = ckptr.metadata(path).item_metadata.tree
        except Exception as err:
            # The arrays' index is an OCDBT database: manifest.ocdbt and the files of d/.
            index = ["manifest.ocdbt"] + sorted(f"d/{p.name}" for p in (Path(path) / "d").glob("*"))
            raise CheckpointError(path, f"its array index ({', '.join(index)}) is unreadable or "
                                        f"incomplete ({first_line(err)})") from None
        return restore_checked(lambda t: ckptr.restore(path, t), stored, path, target)


def reshard(out: Path) -> None:
    """Train a few steps on 4 devices and save; restore onto 2 devices, and onto 1."""
    four, step = trainer()
    params = jax.device_put(init(), four)
    for _ in range(5):
        params = step(params)
    probe = data()[2]
    expected = np.asarray(forward(params, probe))
    print("trained on 4 devices:", *describe(params), sep="\n")

    path = out / "params"
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, params, force=True)  # returns once the arrays are copied to host
        ckptr.wait_until_finished()  # the files are written in the background
    for n in (2, 1):
        target = shardings(params, mesh_of(2)) if n == 2 else None  # None: one device
        restored = restore(path, abstract(params, target))
        close = np.allclose(forward(restored, probe), expected, atol=1e-6, rtol=0)
        print(f"restored onto {n} device{'s' * (n > 1)}:", *describe(restored), sep="\n")
        print(f"  parameters equal: {equal(restored, params)}; "
              f"outputs equal (within 1e-6): {close}")


def manager(out: Path, every: int, keep: int) -> ocp.CheckpointManager:
    """Save every `every` steps, asynchronously, and keep the newest `keep`. A save is
    written to "<step>.orbax-checkpoint-tmp" and renamed to "<step>" once complete; on
    start, the manager deletes what an interrupted save left. (That folder is made before
    save() returns, not in the background as by default: a killed save always leaves it.)"""
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(every),
        preservation_policy=ocp.checkpoint_managers.LatestN(keep),
        enable_async_checkpointing=True, cleanup_tmp_directories=True,
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False))
    return ocp.CheckpointManager(out / "run", options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def train(out: Path, steps: int, every: int, keep: int, die_after_save: int | None = None,
          start: int = 0, params=None, sizes=SIZES) -> None:
    """Train on 4 devices from `start` (or from scratch) to `steps`; the manager saves every
    `every` steps while training goes on. With `die_after_save`, this process kills itself
    (SIGKILL: no clean-up of any kind) as soon as that step's save has started."""
    sharding, step_fn = trainer(sizes)
    params = jax.device_put(init(sizes) if params is None else params, sharding)
    with manager(out, every, keep) as mngr:
        for step in range(start + 1, steps + 1):
            params = step_fn(params)
            if mngr.save(step, args=ocp.args.StandardSave(params)):
                if step == die_after_save:  # the save is being written in the background
                    os.kill(os.getpid(), signal.SIGKILL)
                print(f"step {step}: save started", flush=True)
        mngr.wait_until_finished()
        print("finished; checkpoints:", mngr.all_steps(), flush=True)


def after(steps: int, sizes=SIZES):
    """The parameters after `steps` steps of training, computed again from the start."""
    sharding, step_fn = trainer(sizes)
    params = jax.device_put(init(sizes), sharding)
    for _ in range(steps):
        params = step_fn(params)
    return params


def restore_latest(out: Path, every: int, keep: int, sizes=SIZES):
    """The finished steps, and the newest one's step and parameters (onto 4 devices)."""
    target = abstract(init(sizes), trainer(sizes)[0])
    check_folder(out / "run")
    step = None
    try:
        with manager(out, every, keep) as mngr:
            step = mngr.latest_step()
            if step is None:
                raise CheckpointError(out / "run", "no finished checkpoint")
            stored = mngr.item_metadata(step)
            if stored is None or not hasattr(stored, "tree"):
                raise CheckpointError(out / "run" / str(step), "its metadata is missing")
            params = restore_checked(
                lambda t: mngr.restore(step, args=ocp.args.StandardRestore(t)),
                stored.tree, out / "run" / str(step), target)
            return mngr.all_steps(), step, params
    except CheckpointError:
        raise
    except Exception as err:  # Orbax lets through what damaged metadata makes of it
        where = out / "run" / str(step) if step is not None else out / "run"
        raise CheckpointError(where, f"unreadable ({first_line(err)})") from None


def resume(out: Path, steps: int, every: int, keep: int) -> None:
    """Restart after a crash: the newest finished checkpoint, then train on to `steps`."""
    left = sorted(p.name for p in (out / "run").iterdir())
    print("the killed run left:", left)
    found, step, params = restore_latest(out, every, keep)
    print(f"finished checkpoints: {found}; restored step {step}; "
          f"parameters equal to {step} steps of training: {equal(params, after(step))}")
    print("after the restart the folder holds:", sorted(p.name for p in (out / "run").iterdir()))
    train(out, steps, every, keep, start=step, params=params)


def check(out: Path, every: int, keep: int, sizes=SIZES) -> None:
    """For the tests: one JSON line: the newest finished step and whether it holds exactly
    the parameters of that many steps, or the CheckpointError's message."""
    try:
        found, step, params = restore_latest(out, every, keep, sizes)
        print(json.dumps({"steps": found, "step": step, "equal": equal(params, after(step, sizes))}))
    except CheckpointError as err:
        print(json.dumps({"error": str(err)}))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["reshard", "train", "resume", "check"])
    parser.add_argument("out", nargs="+",
                        help="output folder, relative to the scratch folder (check: one or more)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--keep", type=int, default=2)
    parser.add_argument("--die-after-save", type=int, metavar="STEP",
                        help="kill this process right after the save of STEP has started")
    args = parser.parse_args(argv)
    if len(args.out) > 1 and args.command != "check":
        parser.error(f"{args.command} takes one output folder")
    outs = [output_folder(name) for name in args.out]
    out = outs[0]
    if len(jax.devices()) != 4:
        raise SystemExit(f"JAX started with {len(jax.devices())} devices, not 4: import this "
                         "module before anything starts JAX")
    if args.command == "reshard":
        reshard(out)
    elif args.command == "train":
        train(out, args.steps, args.every, args.keep, args.die_after_save)
    elif args.command == "resume":
        resume(out, args.steps, args.every, args.keep)
    else:
        for out in outs:
            check(out, args.every, args.keep)


if __name__ == "__main__":
    sys.exit(main())
