"""Grading of the TensorFlow / Keras 3 exercises (see grading.checks for the protocol).

The interfaces the prompts define, and nothing else, are relied on:

* ex1: `save_checkpoint(path, model, optimizer, generator, epoch)` and
  `load_checkpoint(path, model, optimizer, generator) -> epoch`;
* ex2: `reuse_layers(weights_path) -> keras.Model`, the file written by `save_weights`;
* ex3: `export_model(model, example_input, path) -> None`, `path` loaded by
  `keras.models.load_model`.

The export code builds its own models (HELPERS, seeded by the grader), calls those functions
with paths in fresh temporary folders, and writes what came out as safetensors and JSON (for
ex3, the `.keras` file itself). The checks compare by value and shape with references the
trusted process computes with the same HELPERS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from grading.checks import Check, Reload, close, difference, read_arrays, read_json

HELPERS = r'''
import numpy as np
import keras
import tensorflow as tf

import d2l_utils
from d2l_utils import tensorflow as d2l_tf

HPARAMS = {"num_outputs": 10, "num_hiddens": [64, 32], "lr": 0.1}
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_data(seed):
    X, y = d2l_utils.make_classification(n=256, num_inputs=20, num_classes=10, seed=seed)
    return tf.constant(X), tf.constant(y)


def stop_epoch(seed):
    """Epochs trained before the checkpoint is written (2, 3 or 4)."""
    return 2 + seed % 3


def make_model(seed):
    """A built MulMLP with weights drawn from `seed`, and its SGD with momentum, built."""
    model = d2l_tf.MulMLP(**HPARAMS)
    model(tf.zeros((1, 20)))
    rng = np.random.default_rng(seed)
    for w in model.weights:
        fan_in = w.shape[0] if len(w.shape) == 2 else 16
        w.assign(rng.normal(0.0, 1.0 / np.sqrt(fan_in), tuple(w.shape)).astype(np.float32))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def train(model, optimizer, generator, epochs, X, y, batch_size=64):
    """Minibatch training; `generator` (a tf.random.Generator) shuffles each epoch."""
    n = int(X.shape[0])
    for _ in range(epochs):
        order = tf.argsort(generator.uniform((n,)))
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            with tf.GradientTape() as tape:
                loss = loss_fn(tf.gather(y, idx), model(tf.gather(X, idx)))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))


def trained_mlp(seed):
    """The MulMLP of exercises 2 and 3: made from `seed`, trained one epoch."""
    X, y = make_data(seed)
    model, optimizer = make_model(seed)
    train(model, optimizer, tf.random.Generator.from_seed(seed), 1, X, y)
    return model


def as_numpy(v):
    return np.array(v.numpy() if hasattr(v, "numpy") else v)


def weight_arrays(model):
    return {f"w{i}": as_numpy(w) for i, w in enumerate(model.weights)}


def state_arrays(model, optimizer, generator):
    """Model weights, the optimizer's momenta (its non-scalar variables) and the generator."""
    arrays = weight_arrays(model)
    momenta = [v for v in optimizer.variables if len(v.shape) > 0]
    arrays.update({f"m{i}": as_numpy(v) for i, v in enumerate(momenta)})
    arrays["generator"] = as_numpy(generator.state)
    return arrays


def fit_new_task(model, X, y, steps=5, lr=0.1):
    """Plain gradient descent over `model.trainable_variables` (what freezing is about)."""
    variables = list(model.trainable_variables)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(X))
        for v, g in zip(variables, tape.gradient(loss, variables)):
            if g is not None:
                v.assign_sub(lr * g)


def new_inputs(seed):
    """Inputs for exercise 3 that the student's code never sees (a batch of 5)."""
    return np.random.default_rng(seed + 1).standard_normal((5, 20)).astype(np.float32)
'''

EXPORTS = {
    "tensorflow-ex1-tests": """
        save_checkpoint = student("save_checkpoint")
        X, y = h["make_data"](seed)
        stop = h["stop_epoch"](seed)
        model, optimizer = h["make_model"](seed)
        generator = h["tf"].random.Generator.from_seed(seed)
        h["train"](model, optimizer, generator, stop, X, y)
        (out / "saved").mkdir()
        save_checkpoint(str(out / "saved" / "run"), model, optimizer, generator, stop)
    """,
    "tensorflow-ex2-tests": """
        import json
        import numpy as np
        from safetensors.numpy import save_file
        reuse_layers = student("reuse_layers")
        X, y = h["make_data"](seed)
        trained = h["trained_mlp"](seed)
        path = str(scratch("pretrained") / "trained-mlp.weights.h5")
        trained.save_weights(path)
        del trained
        model = reuse_layers(path)
        shape = [int(d) for d in np.shape(h["as_numpy"](model(X)))]
        (out / "output.json").write_text(json.dumps({"shape": shape}))
        before = [h["as_numpy"](w) for w in model.weights]
        h["fit_new_task"](model, X, y % 3)
        after = [h["as_numpy"](w) for w in model.weights]
        arrays = {f"before{i}": a for i, a in enumerate(before)}
        arrays.update({f"after{i}": a for i, a in enumerate(after)})
        save_file(arrays, str(out / "weights.safetensors"))
    """,
    "tensorflow-ex3-tests": """
        import shutil
        export_model = student("export_model")
        X, y = h["make_data"](seed)
        model = h["trained_mlp"](seed)
        path = scratch("export") / "exported-mlp.keras"
        export_model(model, X[:8], str(path))
        if path.is_file():
            shutil.copyfile(path, out / "model.keras")
    """,
}

# Exercise 1's loading half: in a fresh kernel, on a copy of the saved files at a new path
# (`saved`), with fresh objects of other values: only the files can carry the state.
RELOADS = {
    "tensorflow-ex1-tests": Reload("""
        import json
        import numpy as np
        from safetensors.numpy import save_file
        load_checkpoint = student("load_checkpoint")
        X, y = h["make_data"](seed)
        model, optimizer = h["make_model"](seed + 1)
        generator = h["tf"].random.Generator.from_seed(seed + 2)
        epoch = load_checkpoint(str(saved / "saved" / "run"), model, optimizer, generator)
        try:
            value = int(np.asarray(epoch))
        except Exception:
            value = None
        (out / "epoch.json").write_text(json.dumps({"epoch": value, "type": type(epoch).__name__}))
        save_file(h["state_arrays"](model, optimizer, generator), str(out / "restored.safetensors"))
        h["train"](model, optimizer, generator, 2, X, y)
        save_file(h["weight_arrays"](model), str(out / "resumed.safetensors"))
    """, ("saved/run",)),
}

# Exercise 2: the parameter shapes of Flatten, Dense(64) (reused), Dense(8), Dense(4), Dense(3)
# on 20 inputs; a kernel may be stored either way round.
EX2_SHAPES = [(20, 64), (64,), (64, 8), (8,), (8, 4), (4,), (4, 3), (3,)]

# TensorFlow imports JAX (tf.lite) and Keras imports pandas and Matplotlib when they are
# installed, as they are beside it here: 1.2 of the 3.5 CPU-s of `import tensorflow, keras`.
# The reference and the checks use none of them.
UNUSED_PACKAGES = ("jax", "pandas", "matplotlib")


def _helpers() -> dict:
    ns: dict = {}
    exec(HELPERS, ns)
    return ns


def reference(seed: int, out: Path) -> None:
    from safetensors.numpy import save_file

    ns = _helpers()
    out = Path(out)
    # ex1: the state after `stop` epochs, and the end of the uninterrupted run
    X, y = ns["make_data"](seed)
    stop = ns["stop_epoch"](seed)
    model, optimizer = ns["make_model"](seed)
    generator = ns["tf"].random.Generator.from_seed(seed)
    ns["train"](model, optimizer, generator, stop, X, y)
    (out / "ex1.json").write_text(json.dumps({"epoch": stop}))
    save_file(ns["state_arrays"](model, optimizer, generator), str(out / "ex1-restored.safetensors"))
    ns["train"](model, optimizer, generator, 2, X, y)
    save_file(ns["weight_arrays"](model), str(out / "ex1-resumed.safetensors"))
    # ex2 and ex3: the trained MulMLP's first Dense layer, and its outputs on unseen inputs
    model = ns["trained_mlp"](seed)
    dense = model.net.layers[1]
    inputs = ns["new_inputs"](seed)
    save_file({"kernel": ns["as_numpy"](dense.kernel), "bias": ns["as_numpy"](dense.bias)},
              str(out / "ex2-saved.safetensors"))
    save_file({"inputs": inputs, "outputs": ns["as_numpy"](model(inputs))},
              str(out / "ex3.safetensors"))


# ---------------------------------------------------------------------------------------------
# checks


def _same_arrays(name: str, got: dict | None, ref: dict, keys: list[str]) -> Check:
    """All `keys` of `ref` equal in `got` (the grader's own models: same order both sides)."""
    if got is None:
        return Check(name, False, "nothing to compare: the export did not finish")
    for k in keys:
        if k not in got:
            return Check(name, False, "an array is missing")
        if not close(got[k], ref[k]):
            return Check(name, False, difference(got[k], ref[k]))
    return Check(name, True)


def _check_ex1(exports: Path, refs: Path) -> list[Check]:
    ref_state = read_arrays(refs / "ex1-restored.safetensors")[0]
    ref_final = read_arrays(refs / "ex1-resumed.safetensors")[0]
    expected = json.loads((refs / "ex1.json").read_text())["epoch"]
    got_state = read_arrays(exports / "restored.safetensors")[0]

    name = "load_checkpoint returns the epoch that was saved"
    try:
        epoch = read_json(exports / "epoch.json", dict)[0]
        value, kind = epoch["epoch"], epoch["type"]
        c1 = (Check(name, True) if value == expected else
              Check(name, False, f"returned {value!r} ({kind}), expected {expected}"
                    if value is not None else f"returned a {kind}, not a number"))
    except Exception:  # noqa: BLE001
        c1 = Check(name, False, "load_checkpoint did not return (see the export's error)")

    weights = sorted(k for k in ref_state if k.startswith("w"))
    momenta = sorted(k for k in ref_state if k.startswith("m"))
    c2 = _same_arrays("The restored model has the saved weights", got_state, ref_state, weights)
    c3 = _same_arrays("The restored optimizer has the saved momentum", got_state, ref_state, momenta)
    name = "The restored random generator continues where the saved one stopped"
    if got_state is None or "generator" not in got_state:
        c4 = Check(name, False, "nothing to compare: the export did not finish")
    elif np.array_equal(got_state["generator"], ref_state["generator"]):
        c4 = Check(name, True)
    else:
        c4 = Check(name, False, "the generator's state differs from the saved one")
    c5 = _same_arrays("Training resumed from the restored objects ends where an uninterrupted run ends",
                      read_arrays(exports / "resumed.safetensors")[0], ref_final, sorted(ref_final))
    return [c1, c2, c3, c4, c5]


def _norm(shape: tuple) -> tuple:
    return tuple(sorted(shape)) if len(shape) == 2 else tuple(shape)


def _find(arrays: list[np.ndarray], target: np.ndarray) -> int | None:
    """Index of an array equal to `target` (or to its transpose), or None."""
    for i, a in enumerate(arrays):
        if close(a, target) or (target.ndim == 2 and close(a, target.T)):
            return i
    return None


def _check_ex2(exports: Path, refs: Path) -> list[Check]:
    saved = read_arrays(refs / "ex2-saved.safetensors")[0]
    got = read_arrays(exports / "weights.safetensors")[0]
    missing = "nothing to compare: the export did not finish"

    name = "The new model gives 3 outputs per example"
    try:
        shape = read_json(exports / "output.json", dict)[0]["shape"]
        c1 = Check(name, shape == [256, 3], "" if shape == [256, 3] else
                   f"output shape {tuple(shape)} for 256 examples, expected (256, 3)")
    except Exception:  # noqa: BLE001
        c1 = Check(name, False, "the model's output could not be computed")

    n = len([k for k in got if k.startswith("before")]) if got is not None else 0
    before = [got[f"before{i}"] for i in range(n)] if got is not None else []
    after = [got.get(f"after{i}") for i in range(n)] if got is not None else []

    name = "Its layers have the asked sizes: 20 -> 64 (reused), then 8, 4 and 3 units"
    found = sorted(_norm(a.shape) for a in before)
    wanted = sorted(_norm(s) for s in EX2_SHAPES)
    c2 = (Check(name, False, missing) if got is None else
          Check(name, found == wanted, "" if found == wanted else
                f"parameter shapes {sorted(a.shape for a in before)}, expected {EX2_SHAPES}"))

    k, b = _find(before, saved["kernel"]), _find(before, saved["bias"])
    name = "The reused layer carries the saved weights"
    c3 = (Check(name, False, missing) if got is None else
          Check(name, k is not None and b is not None, "" if k is not None and b is not None else
                "no parameter of the new model equals the saved first Dense layer's "
                + ("kernel" if k is None else "bias")))

    name = "Training over trainable_variables leaves the reused weights unchanged"
    if not c3.passed or any(a is None for a in after):
        c4 = Check(name, False, "the saved weights are not in the model" if got is not None else missing)
    else:
        moved = [i for i in (k, b) if not np.array_equal(after[i], before[i])]
        c4 = Check(name, not moved, "" if not moved else
                   "after 5 training steps: " + difference(after[moved[0]], before[moved[0]]))

    name = "Training over trainable_variables changes the new layers"
    others = [i for i in range(n) if i not in (k, b)]
    if got is None or any(a is None for a in after):
        c5 = Check(name, False, missing)
    elif not c3.passed:
        c5 = Check(name, False, "the saved weights are not in the model, so its new layers "
                                "cannot be told from the reused ones")
    elif not others:
        c5 = Check(name, False, "the model has no parameters besides the reused ones")
    else:
        still = [i for i in others if np.array_equal(after[i], before[i])]
        c5 = Check(name, not still, "" if not still else
                   f"{len(still)} of {len(others)} new parameter arrays did not change "
                   f"(shapes {[before[i].shape for i in still]})")
    return [c1, c2, c3, c4, c5]


def _check_ex3(exports: Path, refs: Path) -> list[Check]:
    ref = read_arrays(refs / "ex3.safetensors")[0]
    path = exports / "model.keras"
    c1 = Check("export_model writes a file at the given path", path.is_file(),
               "" if path.is_file() else "no file was written at the path given to export_model")
    name_load = "The file loads with keras.models.load_model without the model's Python code"
    name_out = "The loaded model gives the model's outputs on new inputs (a batch of 5)"
    if not c1.passed:
        return [c1, Check(name_load, False, "no file"), Check(name_out, False, "no file")]
    blocked = ("d2l_utils", "d2l")
    saved_modules = {m: sys.modules.get(m) for m in blocked}
    try:
        for m in blocked:
            sys.modules[m] = None  # a file that needs the model's classes must fail to load
        import keras

        try:
            loaded = keras.models.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:  # noqa: BLE001
            first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
            return [c1, Check(name_load, False, f"{type(exc).__name__}: {first}"),
                    Check(name_out, False, "the file did not load")]
        c2 = Check(name_load, True)
        try:
            got = keras.ops.convert_to_numpy(loaded(ref["inputs"]))
            got = np.asarray(got)
        except Exception as exc:  # noqa: BLE001
            return [c1, c2, Check(name_out, False, f"calling the loaded model failed: {type(exc).__name__}")]
    finally:
        for m, mod in saved_modules.items():
            if mod is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = mod
    c3 = Check(name_out, close(got, ref["outputs"]),
               "" if close(got, ref["outputs"]) else difference(got, ref["outputs"]))
    return [c1, c2, c3]


def check(grade_id: str, exports: Path, refs: Path) -> list[Check]:
    exports, refs = Path(exports), Path(refs)
    if (exports / grade_id).is_dir():
        exports = exports / grade_id
    return {
        "tensorflow-ex1-tests": _check_ex1,
        "tensorflow-ex2-tests": _check_ex2,
        "tensorflow-ex3-tests": _check_ex3,
    }[grade_id](exports, refs)
