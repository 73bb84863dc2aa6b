"""Grading of the JAX / Flax assignment (solutions/jax/exercises.ipynb); protocol in grading.checks.

The interfaces the prompts define, and nothing else, are relied on:

* jax-ex1-tests: `save_checkpoint(path, state)` and `load_checkpoint(path, like) -> state`, where a
  state is the dict {"params", "opt_state", "key", "epoch"} that the notebook's `init` and
  `train` make, and `path` an absolute pathlib.Path in an existing folder (a file, files that
  start with it, or a folder: the grader moves the whole folder between saving and loading).
* jax-ex2-tests: `build_reused(saved) -> (new_model, new_params, new_tx)`, `saved` being the
  variables of a MulMLP(10, (64, 32)) on 20 features; the reused layer is found by value.
* jax-ex3-tests: `export_model(model, params, x, path)`, writing at `path` the bytes of a
  serialised `jax.export.Exported`, loaded here with `jax.export.deserialize` only.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from grading.checks import Check, Reload, close, max_diff, read_arrays, read_json

HELPERS = '''
import jax
import jax.numpy as jnp
import numpy as np
import optax

import d2l_utils
from d2l_utils import jax as d2l

EPOCHS, STOP, BATCH = 6, 3, 64
MODEL = d2l.MulMLP(num_outputs=10, num_hiddens=(64, 32), lr=0.1)
TX = optax.sgd(0.1, momentum=0.9)


def data(seed):
    X, y = d2l_utils.make_classification(n=256, num_inputs=20, num_classes=10, seed=seed)
    return jnp.asarray(X), jnp.asarray(y)


def init(seed):
    """A training state as the notebook's `init` makes it."""
    params = MODEL.init(jax.random.key(seed), jnp.zeros((1, 20), jnp.float32))
    return {"params": params, "opt_state": TX.init(params),
            "key": jax.random.key_data(jax.random.key(seed + 1)), "epoch": 0}


@jax.jit
def step(params, opt_state, Xb, yb):
    grads = jax.grad(lambda p: MODEL.loss(MODEL.apply(p, Xb), yb))(params)
    updates, opt_state = TX.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def train(state, epochs, seed):
    """The notebook's `train`: SGD with momentum, shuffled by keys split from state["key"]."""
    X, y = data(seed)
    params, opt_state, key = state["params"], state["opt_state"], state["key"]
    for _ in range(epochs):
        key, sub = jax.random.split(key)
        order = jax.random.permutation(sub, X.shape[0])
        for i in range(0, X.shape[0], BATCH):
            idx = order[i:i + BATCH]
            params, opt_state = step(params, opt_state, X[idx], y[idx])
    return {"params": params, "opt_state": opt_state, "key": key,
            "epoch": state["epoch"] + epochs}


def saved_params(seed):
    """Exercise 2: the variables of a MulMLP(10, (64, 32)) on 20 features, trained one epoch
    (so that no array, not even a bias, keeps its initial value)."""
    return train(init(seed + 100), 1, seed + 100)["params"]


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


FT_STEPS = 5
NEW_SHAPES = [(20, 64), (64,), (64, 8), (8,), (8, 4), (4,), (4, 3), (3,)]

# Exercise 3: two models to export, (num_outputs, num_hiddens, batch size of the example input).
EX3 = {"a": (10, (64, 32), 8), "b": (5, (16,), 5)}


def ex3_model(name, seed):
    outputs, hiddens, batch = EX3[name]
    model = d2l.MulMLP(num_outputs=outputs, num_hiddens=hiddens, lr=0.1)
    params = model.init(jax.random.key(seed + 200 + len(hiddens)),
                        jnp.zeros((1, 20), jnp.float32))
    return model, params


def ex3_input(name, seed, which):
    """which=0: the example input given to export_model; which=1: the inputs checked."""
    batch = EX3[name][2]
    rng = np.random.default_rng([seed, 300 + len(EX3[name][1]), which])
    return rng.standard_normal((batch, 20)).astype(np.float32)
'''

# Every body starts with these (a plain string joined in front: no templating): `put` collects
# a pytree's leaves under a prefix, `finish` writes them and the info (counts, errors).
_PRELUDE = """
    import json, pathlib, shutil
    import numpy as np
    import jax
    from safetensors.numpy import save_file

    def why(exc):
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]

    arrays, info = {}, {"errors": {}}

    def put(prefix, tree):
        leaves = jax.tree.leaves(tree)
        for i, leaf in enumerate(leaves):
            a = np.ascontiguousarray(np.asarray(leaf))
            if a.dtype.kind not in "biuf":
                raise TypeError(f"{prefix} holds a non-numeric value ({a.dtype})")
            arrays[f"{prefix}.{i}"] = a
        info[f"{prefix}_count"] = len(leaves)

    def finish():
        save_file(arrays, str(out / "arrays.safetensors"))
        (out / "info.json").write_text(json.dumps(info))
"""

_EX1 = _PRELUDE + """
    save_checkpoint = student("save_checkpoint")
    # Two checkpoints (A: the run to resume, B: another run, stopped one epoch earlier), each
    # in a folder of its own, loaded by RELOADS in a fresh kernel from copies at a new path.
    for name, (start, epochs) in (("a", (seed, h["STOP"])), ("b", (seed + 50, h["STOP"] - 1))):
        folder = out / "saved" / name
        folder.mkdir(parents=True)
        state = h["train"](h["init"](start), epochs, seed)
        save_checkpoint(folder / "checkpoint", state)
        del state
        if not any(f.is_file() for f in folder.rglob("*")):
            raise FileNotFoundError("save_checkpoint(path, state) wrote no file at path")
"""

# The loading half of exercise 1, in a fresh kernel (B first): what is loaded can only come
# from the files.
_EX1_LOAD = _PRELUDE + """
    load_checkpoint = student("load_checkpoint")
    folders = {name: saved / "saved" / name for name in ("a", "b")}
    restored_b = load_checkpoint(folders["b"] / "checkpoint", h["init"](seed + 1))
    restored = load_checkpoint(folders["a"] / "checkpoint", h["init"](seed + 1))
    for name, got in (("epoch", restored), ("epoch_b", restored_b)):
        try:
            info[name] = int(np.asarray(got["epoch"]))
        except Exception as exc:
            info["errors"][name] = why(exc)
    for part, got in (("params", restored), ("opt_state", restored), ("key", restored),
                      ("params_b", restored_b)):
        try:
            put(part, got[part.removesuffix("_b")])
        except Exception as exc:
            info["errors"][part] = why(exc)
    try:
        resumed = h["train"](restored, h["EPOCHS"] - h["STOP"], seed)
        put("resumed", resumed["params"])
    except Exception as exc:
        info["errors"]["resumed"] = why(exc)
    finish()
"""

_EX2 = _PRELUDE + """
    import optax
    build_reused = student("build_reused")
    pretrained = h["saved_params"](seed)
    result = build_reused(jax.tree.map(lambda a: a, pretrained))
    try:
        new_model, new_params, new_tx = result
    except Exception:
        raise TypeError("build_reused must return (new_model, new_params, new_tx)") from None
    X, y = h["data"](seed)
    y3 = y % 3
    put("before", new_params)
    try:
        base = np.asarray(new_model.apply(new_params, X))
        info["output_shape"] = list(base.shape)
    except Exception as exc:
        info["errors"]["apply"] = why(exc)
        base = None
    if base is not None:  # how much the output moves when one parameter array moves
        leaves, treedef = jax.tree.flatten(new_params)
        moved = []
        for i in range(len(leaves)):
            try:
                bumped = list(leaves)
                bumped[i] = jax.numpy.asarray(leaves[i]) + 0.5
                shifted = np.asarray(new_model.apply(jax.tree.unflatten(treedef, bumped), X))
                moved.append(float(np.max(np.abs(shifted - base))))
            except Exception:
                moved.append(None)
        info["sensitivity"] = moved
    try:
        loss = lambda p: h["cross_entropy"](new_model.apply(p, X), y3)
        p, s = new_params, new_tx.init(new_params)
        for _ in range(h["FT_STEPS"]):
            updates, s = new_tx.update(jax.grad(loss)(p), s, p)
            p = optax.apply_updates(p, updates)
        put("after", p)
    except Exception as exc:
        info["errors"]["train"] = why(exc)
    finish()
"""

_EX3 = _PRELUDE + """
    export_model = student("export_model")
    failed = None
    for name in ("a", "b"):
        model, params = h["ex3_model"](name, seed)
        path = scratch(name) / "model"
        try:
            export_model(model, params, h["ex3_input"](name, seed, 0), path)
        except Exception as exc:
            info["errors"][name] = why(exc)
            failed = failed or exc
            continue
        if path.is_file():
            shutil.copyfile(path, out / f"{name}.jaxexport")
        else:
            info["errors"][name] = "no file was written at the given path"
    finish()
    if failed is not None:
        raise failed
"""


# XLA compiles every jitted computation on first use: most of a graded JAX notebook's CPU time.
WARM_COMPILE_CACHE = True

EXPORTS = {
    "jax-ex1-tests": _EX1,
    "jax-ex2-tests": _EX2,
    "jax-ex3-tests": _EX3,
}
RELOADS = {"jax-ex1-tests": Reload(_EX1_LOAD,
                                  ("saved/a/checkpoint", "saved/b/checkpoint"))}


# ---------------------------------------------------------------- trusted side

def _helpers() -> dict:
    ns: dict = {}
    exec(HELPERS, ns)
    return ns


def _leaves(tree) -> list[np.ndarray]:
    import jax

    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def reference(seed: int, out: Path) -> None:
    from safetensors.numpy import save_file

    ns = _helpers()
    out = Path(out)
    arrays: dict[str, np.ndarray] = {}

    def put(prefix, values):
        for i, a in enumerate(values):
            arrays[f"{prefix}.{i}"] = np.ascontiguousarray(a)

    # ex1: the state after STOP epochs (what was saved) and the uninterrupted run's end.
    saved = ns["train"](ns["init"](seed), ns["STOP"], seed)
    saved_b = ns["train"](ns["init"](seed + 50), ns["STOP"] - 1, seed)
    put("ex1.params", _leaves(saved["params"]))
    put("ex1.params_b", _leaves(saved_b["params"]))
    put("ex1.opt_state", _leaves(saved["opt_state"]))
    put("ex1.key", _leaves(saved["key"]))
    put("ex1.final", _leaves(ns["train"](ns["init"](seed), ns["EPOCHS"], seed)["params"]))
    # ex2: the saved first layer.
    dense0 = ns["saved_params"](seed)["params"]["Dense_0"]
    arrays["ex2.kernel"] = np.asarray(dense0["kernel"])
    arrays["ex2.bias"] = np.asarray(dense0["bias"])
    # ex3: inputs the student never saw, and the models' outputs on them.
    for name in ns["EX3"]:
        model, params = ns["ex3_model"](name, seed)
        x = ns["ex3_input"](name, seed, 1)
        arrays[f"ex3.{name}.x"] = x
        arrays[f"ex3.{name}.y"] = np.asarray(model.apply(params, x))
    save_file(arrays, str(out / "jax.safetensors"))
    (out / "jax.json").write_text(json.dumps({
        "epoch": int(saved["epoch"]), "epoch_b": int(saved_b["epoch"]), "new_shapes": [list(s) for s in ns["NEW_SHAPES"]],
        "batch": 256}))


# -- loading untrusted exports (safe loaders only)

def _load_export(folder: Path) -> tuple[dict, dict, str]:
    """(info, arrays, problem): problem is "" when both files loaded."""
    if not (folder / "info.json").exists():
        return {}, {}, "nothing was exported (did the cell with your functions run?)"
    info, _ = read_json(folder / "info.json", dict)
    arrays, _ = read_arrays(folder / "arrays.safetensors")
    if info is None or arrays is None:
        return {}, {}, "the exported files could not be read"
    if not isinstance(info.get("errors"), dict):
        info["errors"] = {}
    return info, arrays, ""


def _series(arrays: dict, info: dict, prefix: str) -> list[np.ndarray] | None:
    n = info.get(f"{prefix}_count")
    if not isinstance(n, int) or n < 0:
        return None
    try:
        return [arrays[f"{prefix}.{i}"] for i in range(n)]
    except KeyError:
        return None


def _ref_series(arrays: dict, prefix: str) -> list[np.ndarray]:
    out, i = [], 0
    while f"{prefix}.{i}" in arrays:
        out.append(arrays[f"{prefix}.{i}"])
        i += 1
    return out


def _compare(expected: list[np.ndarray], got: list[np.ndarray] | None, what: str) -> tuple[bool, str]:
    """Arrays equal in order (the structure the prompt asks for); otherwise, as a fallback,
    each expected array matched by a distinct equal one in any order."""
    if got is None:
        return False, f"{what}: not available"
    if len(got) != len(expected):
        return False, f"{what}: {len(got)} arrays, expected {len(expected)}"
    if all(close(e, g) for e, g in zip(expected, got)):
        return True, ""
    unused = list(range(len(got)))
    for e in expected:
        hit = next((j for j in unused if close(e, got[j])), None)
        if hit is None:
            break
        unused.remove(hit)
    else:
        return True, ""
    same = [(e, g) for e, g in zip(expected, got) if e.shape == g.shape]
    if len(same) < len(expected):
        return False, f"{what}: shapes {[tuple(g.shape) for g in got]}, expected {[tuple(e.shape) for e in expected]}"
    return False, f"{what}: max difference {max(max_diff(e, g) for e, g in same):.3g}"


def _refs(refs: Path) -> tuple[dict, dict]:
    from safetensors.numpy import load_file

    return load_file(str(Path(refs) / "jax.safetensors")), json.loads((Path(refs) / "jax.json").read_text())


def _check_ex1(exports: Path, refs: Path) -> list[Check]:
    ref, meta = _refs(refs)
    names = ("load_checkpoint returns the saved epoch (two checkpoints)",
             "The restored parameters equal the saved ones (two checkpoints)",
             "Training resumed from the restored state ends exactly where an uninterrupted run ends")
    info, arrays, problem = _load_export(exports)
    if problem:
        return [Check(n, False, problem) for n in names]
    errors = info["errors"]
    c1 = c2 = None
    for key in ("epoch", "epoch_b"):
        if key in errors:
            c1 = c1 or Check(names[0], False, f"reading the returned state's epoch failed: {errors[key]}")
    if c1 is None:
        got, want = [info.get("epoch"), info.get("epoch_b")], [meta["epoch"], meta["epoch_b"]]
        c1 = Check(names[0], got == want, "" if got == want else
                   f"returned epochs {got[0]} and {got[1]}, saved {want[0]} and {want[1]}")
    for key, label in (("params", "first checkpoint"), ("params_b", "second checkpoint")):
        if key in errors:
            c2 = c2 or Check(names[1], False, f"reading the returned parameters failed: {errors[key]}")
            continue
        ok, detail = _compare(_ref_series(ref, f"ex1.{key}"), _series(arrays, info, key),
                              f"parameters of the {label}")
        if not ok:
            c2 = c2 or Check(names[1], False, detail)
    c2 = c2 or Check(names[1], True)
    if "resumed" in errors:
        c3 = Check(names[2], False, f"training the returned state failed: {errors['resumed']}")
    else:
        ok, detail = _compare(_ref_series(ref, "ex1.final"), _series(arrays, info, "resumed"),
                              "final parameters")
        if not ok:  # say which part of the state did not come back
            for part, label in (("opt_state", "optimizer state"), ("key", "PRNG key")):
                same, _ = _compare(_ref_series(ref, f"ex1.{part}"), _series(arrays, info, part), label)
                if not same:
                    detail += f"; the restored {label} differs from the saved one"
        c3 = Check(names[2], ok, detail)
    return [c1, c2, c3]


def _shape_key(shape) -> tuple:
    return tuple(sorted(shape)) if len(shape) == 2 else tuple(shape)


def _check_ex2(exports: Path, refs: Path) -> list[Check]:
    ref, meta = _refs(refs)
    names = ("The new model has the reused 20->64 layer, new layers of widths 8 and 4, and 3 outputs",
             "The reused layer holds the saved first layer's weights and bias, and the model uses it",
             "Training with new_tx leaves the reused layer as saved and trains every new layer")
    info, arrays, problem = _load_export(exports)
    if problem:
        return [Check(n, False, problem) for n in names]
    errors = info["errors"]
    before = _series(arrays, info, "before")
    if before is None:
        return [Check(n, False, "the new parameters could not be read") for n in names]

    # 1. architecture: the multiset of parameter shapes (a 2-D array in either orientation)
    # and the output shape.
    expected = Counter(_shape_key(s) for s in meta["new_shapes"])
    got = Counter(_shape_key(a.shape) for a in before)
    out_shape = info.get("output_shape")
    if "apply" in errors:
        c1 = Check(names[0], False, f"new_model.apply(new_params, X) failed: {errors['apply']}")
    elif got != expected:
        c1 = Check(names[0], False, f"parameter shapes {sorted(tuple(a.shape) for a in before)}, "
                                    f"expected {sorted(tuple(s) for s in meta['new_shapes'])}")
    elif out_shape != [meta["batch"], 3]:
        c1 = Check(names[0], False, f"output shape {out_shape}, expected {[meta['batch'], 3]}")
    else:
        c1 = Check(names[0], True)

    # 2. the saved kernel (or its transpose) and bias are among the new parameters, and used.
    kernel, bias = ref["ex2.kernel"], ref["ex2.bias"]
    ik = next((i for i, a in enumerate(before) if close(kernel, a) or close(kernel.T, a)), None)
    ib = next((i for i, a in enumerate(before) if close(bias, a)), None)
    sens = info.get("sensitivity")
    if ik is None or ib is None:
        missing = " and ".join(w for w, i in (("weights", ik), ("bias", ib)) if i is None)
        c2 = Check(names[1], False, f"no new parameter equals the saved first layer's {missing}")
    elif not isinstance(sens, list) or len(sens) != len(before):
        c2 = Check(names[1], False, "the model's output could not be computed")
    else:
        unused = [w for w, i in (("weights", ik), ("bias", ib))
                  if not isinstance(sens[i], (int, float)) or not sens[i] > 0]
        c2 = Check(names[1], not unused,
                   f"changing the reused {' and '.join(unused)} does not change the output" if unused else "")

    # 3. frozen and trained.
    after = _series(arrays, info, "after")
    if "train" in errors:
        c3 = Check(names[2], False, f"training with new_tx failed: {errors['train']}")
    elif after is None or len(after) != len(before) or any(a.shape != b.shape for a, b in zip(after, before)):
        c3 = Check(names[2], False, "after training, the parameters have another structure")
    elif ik is None or ib is None:
        c3 = Check(names[2], False, "the reused layer was not found among the new parameters")
    else:
        moved = [w for w, i in (("weights", ik), ("bias", ib)) if not np.array_equal(before[i], after[i])]
        still = [i for i in range(len(before)) if i not in (ik, ib) and np.array_equal(before[i], after[i])]
        if moved:
            diff = max(max_diff(before[i], after[i]) for i in (ik, ib))
            c3 = Check(names[2], False, f"the reused {' and '.join(moved)} changed (max change {diff:.3g})")
        elif still:
            c3 = Check(names[2], False, f"{len(still)} of the {len(before) - 2} new parameter arrays "
                                        f"did not change (shapes {[tuple(before[i].shape) for i in still]})")
        else:
            c3 = Check(names[2], True)
    return [c1, c2, c3]


class _Blocked:
    """Make `import d2l_utils` and `import flax` fail while the exported file is loaded: it
    must run with JAX alone."""

    NAMES = ("d2l_utils", "flax")

    def __enter__(self):
        self.saved = {n: sys.modules.get(n, None) for n in self.NAMES}
        for n in self.NAMES:
            sys.modules[n] = None  # type: ignore[assignment]

    def __exit__(self, *exc):
        for n, mod in self.saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def _run_export(file: Path, x: np.ndarray):
    """(outputs, problem), loading with the standard loader only."""
    import jax
    import jax.export  # noqa: F401

    if not file.is_file():
        return None, "no file was exported"
    with _Blocked():
        try:
            exp = jax.export.deserialize(bytearray(file.read_bytes()))
            if not isinstance(exp, jax.export.Exported):
                return None, "jax.export.deserialize did not return an Exported"
        except Exception as exc:
            return None, f"jax.export.deserialize could not load it ({type(exc).__name__})"
        try:
            y = np.asarray(exp.call(x))
        except Exception as exc:
            return None, f"calling it on inputs of shape {x.shape} failed ({type(exc).__name__})"
    return y, ""


def _check_ex3(exports: Path, refs: Path) -> list[Check]:
    ref, _ = _refs(refs)
    names = ("The file loads with jax.export.deserialize, without Flax or d2l_utils",
             "Its outputs on new inputs equal the model's outputs",
             "Another model (5 outputs, one hidden layer, batches of 5) is exported correctly too")
    try:
        info = json.loads((exports / "info.json").read_text())
        errors = info.get("errors", {}) if isinstance(info, dict) else {}
        errors = errors if isinstance(errors, dict) else {}
    except Exception:
        errors = {}
    results = {}
    for name in ("a", "b"):
        if name in errors and isinstance(errors[name], str):
            results[name] = (None, f"export_model failed: {errors[name]}")
        else:
            results[name] = _run_export(exports / f"{name}.jaxexport", ref[f"ex3.{name}.x"])

    def outputs_match(name):
        y, problem = results[name]
        if y is None:
            return False, problem
        want = ref[f"ex3.{name}.y"]
        if y.shape != want.shape:
            return False, f"output shape {y.shape}, expected {want.shape}"
        return close(want, y), f"max difference {max_diff(want, y):.3g}"

    ya, problem_a = results["a"]
    ok2, d2 = outputs_match("a")
    ok3, d3 = outputs_match("b")
    return [Check(names[0], ya is not None, problem_a),
            Check(names[1], ok2, "" if ok2 else d2),
            Check(names[2], ok3, "" if ok3 else d3)]


def check(grade_id: str, exports: Path, refs: Path) -> list[Check]:
    exports, refs = Path(exports), Path(refs)
    if grade_id == "jax-ex1-tests":
        return _check_ex1(exports, refs)
    if grade_id == "jax-ex2-tests":
        return _check_ex2(exports, refs)
    if grade_id == "jax-ex3-tests":
        return _check_ex3(exports, refs)
    raise KeyError(grade_id)
