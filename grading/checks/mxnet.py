"""Grading of the MXNet exercises (solutions/mxnet/exercises.ipynb); protocol: grading.checks.

The prompts define the interface, and only it is used:

ex1  save_checkpoint(path, model, trainer, rng, epoch) and
     load_checkpoint(path, model, trainer, rng) -> epoch
     (model: a MulMLP, trainer: its gluon.Trainer, SGD with momentum, rng: the NumPy Generator
     that shuffles the data; path: a str in an existing folder)
ex2  reuse_layers(params_path) -> the new model
     (params_path: a file written by MulMLP.save_parameters; the new model starts with the saved
     model's first two Dense layers, frozen in the model, then hidden widths [8, 4], 3 outputs)
ex3  export_model(net, x, path) -> None
     (writes path + "-symbol.json" and path + "-0000.params", which
     gluon.SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params") runs)

Everything is compared by value and shape, never by file names inside a checkpoint, parameter
names or layer positions of the student's model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from grading.checks import Check, Reload, close, difference, read_arrays, read_json

HELPERS = '''
import numpy as onp

import d2l_utils
from d2l_utils import mxnet as d2l
from d2l_utils.mxnet import mxnet as mx, np, npx
from mxnet import autograd, gluon

npx.set_np()
HPARAMS = {"num_outputs": 10, "num_hiddens": [64, 32], "lr": 0.1}
STOP, EPOCHS = 2, 4  # ex1: checkpoint after STOP epochs, EPOCHS in all
STEPS = 5            # ex2: training steps on the new model


def data(seed):
    return d2l_utils.make_classification(n=256, num_inputs=20, num_classes=10, seed=seed)


def make_model(seed, X):
    """A seeded MulMLP (shapes known after one batch) and its SGD-with-momentum trainer.

    Built under a fresh NameManager, so its layers are named dense0, dense1, ... whatever the
    student's notebook built before: a Trainer numbers parameters by sorted name, and
    `trainer.save_states`/`load_states` map states by that number."""
    mx.random.seed(seed)
    with mx.name.NameManager():
        model = d2l.MulMLP(**HPARAMS)
    model(np.array(X[:1]))
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    return model, trainer


def train(model, trainer, rng, X, y, epochs, batch_size=64):
    """Minibatch SGD, shuffled by the NumPy generator rng."""
    Xm, ym = np.array(X), np.array(y)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), batch_size):
            idx = np.array(order[i:i + batch_size])
            with autograd.record():
                loss = model.loss(model(Xm[idx]), ym[idx])
            loss.backward()
            trainer.step(1)


def saved_model(seed, X, y):
    """ex2: the MulMLP whose parameters the student reuses (trained one epoch)."""
    model, trainer = make_model(seed + 20, X)
    train(model, trainer, onp.random.default_rng(seed + 21), X, y, 1)
    return model


def exported_model(seed, X, y):
    """ex3: the MulMLP whose net the student exports (trained one epoch)."""
    model, trainer = make_model(seed + 30, X)
    train(model, trainer, onp.random.default_rng(seed + 31), X, y, 1)
    return model


def unseen_inputs(seed):
    """ex3: inputs the student's code never sees (another size than the example batch)."""
    return d2l_utils.make_classification(n=64, num_inputs=20, num_classes=10, seed=seed + 1000)[0]


def arrays(block):
    """A block's parameters as NumPy arrays, keyed p000, p001, ... in collect_params order;
    parameters that are not initialised (never used) are left out."""
    found = {}
    for i, p in enumerate(block.collect_params().values()):
        try:
            found[f"p{i:03d}"] = onp.ascontiguousarray(p.data().asnumpy())
        except Exception:
            pass
    return found
'''

# Every body starts with these (a plain string joined in front: no templating).
_PRELUDE = """
    import json, shutil
    import numpy as onp
    from safetensors.numpy import save_file
    X, y = h["data"](seed)
"""

EXPORTS = {
    "mxnet-ex1-tests": _PRELUDE + """
    save_checkpoint = student("save_checkpoint")
    model, trainer = h["make_model"](seed, X)
    rng = onp.random.default_rng(seed + 1)
    h["train"](model, trainer, rng, X, y, h["STOP"])
    (out / "saved").mkdir()
    save_checkpoint(str(out / "saved" / "ckpt"), model, trainer, rng, h["STOP"])
""",
    "mxnet-ex2-tests": _PRELUDE + """
    reuse_layers = student("reuse_layers")
    mx, np, autograd, gluon = h["mx"], h["np"], h["autograd"], h["gluon"]
    pretrained = scratch("saved") / "pretrained.params"
    h["saved_model"](seed, X, y).save_parameters(str(pretrained))
    mx.random.seed(seed + 22)
    model = reuse_layers(str(pretrained))
    Xm, y3 = np.array(X), np.array(y % 3)
    scores = model(Xm)
    (out / "output.json").write_text(json.dumps({"shape": [int(n) for n in scores.shape]}))
    before = h["arrays"](model)
    # the parameters the output depends on: shift each one, see whether the output moves
    params = {f"p{i:03d}": p for i, p in enumerate(model.collect_params().values())}
    base, used = scores.asnumpy(), []
    for key in before:
        p = params[key]
        p.set_data(p.data() + 1)
        if not onp.allclose(model(Xm).asnumpy(), base):
            used.append(key)
        p.set_data(np.array(before[key]))
    (out / "used.json").write_text(json.dumps(used))
    save_file(before, str(out / "before.safetensors"))
    # a standard trainer over all parameters: freezing has to live in the model
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": 0.1})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(h["STEPS"]):
        with autograd.record():
            loss = loss_fn(model(Xm), y3).mean()
        loss.backward()
        trainer.step(1, ignore_stale_grad=True)
    save_file(h["arrays"](model), str(out / "after.safetensors"))
""",
    "mxnet-ex3-tests": _PRELUDE + """
    export_model = student("export_model")
    model = h["exported_model"](seed, X, y)
    target = scratch("export")
    export_model(model.net, h["np"].array(X[:8]), str(target / "exported"))
    for suffix in ("-symbol.json", "-0000.params"):
        if (target / ("exported" + suffix)).is_file():
            shutil.copyfile(target / ("exported" + suffix), out / ("exported" + suffix))
""",
}


# Exercise 1's loading half: in a fresh kernel, on a copy of the saved files at a new path
# (`saved`), in another working folder, with fresh objects of other values: only the files can
# carry the state.
RELOADS = {
    "mxnet-ex1-tests": Reload(_PRELUDE + """
    load_checkpoint = student("load_checkpoint")
    model, trainer = h["make_model"](seed + 100, X)
    rng = onp.random.default_rng(seed + 200)
    epoch = load_checkpoint(str(saved / "saved" / "ckpt"), model, trainer, rng)
    try:
        value = int(epoch) if int(epoch) == epoch else None
    except Exception:
        value = None
    (out / "epoch.json").write_text(json.dumps({"epoch": value, "type": type(epoch).__name__}))
    save_file(h["arrays"](model), str(out / "restored.safetensors"))
    h["train"](model, trainer, rng, X, y, h["EPOCHS"] - h["STOP"])
    save_file(h["arrays"](model), str(out / "resumed.safetensors"))
""", ("saved/ckpt",)),
}


def _helpers() -> dict:
    ns: dict = {}
    exec(HELPERS, ns)  # noqa: S102  (the grader's own code)
    return ns


def reference(seed: int, out: Path) -> None:
    from safetensors.numpy import save_file

    ns = _helpers()
    X, y = ns["data"](seed)
    # ex1: the state after STOP epochs and after EPOCHS without a stop
    model, trainer = ns["make_model"](seed, X)
    rng = np.random.default_rng(seed + 1)
    ns["train"](model, trainer, rng, X, y, ns["STOP"])
    save_file(ns["arrays"](model), str(out / "ex1-stop.safetensors"))
    ns["train"](model, trainer, rng, X, y, ns["EPOCHS"] - ns["STOP"])
    save_file(ns["arrays"](model), str(out / "ex1-final.safetensors"))
    (out / "ex1.json").write_text(json.dumps({"epoch": ns["STOP"]}))
    # ex2: the first two Dense layers of the saved MulMLP (weights are (out, in) in Gluon)
    saved = ns["saved_model"](seed, X, y).net
    layers = {"first layer's weight": saved[0].weight, "first layer's bias": saved[0].bias,
              "second layer's weight": saved[1].weight, "second layer's bias": saved[1].bias}
    save_file({k: np.ascontiguousarray(p.data().asnumpy()) for k, p in layers.items()},
              str(out / "ex2-reused.safetensors"))
    # ex3: the exported model's outputs on inputs the student never saw
    net = ns["exported_model"](seed, X, y).net
    x = ns["unseen_inputs"](seed)
    save_file({"x": x, "y": np.ascontiguousarray(net(ns["np"].array(x)).asnumpy())},
              str(out / "ex3.safetensors"))


def _same_params(got: dict | None, want: dict, what: str) -> tuple[bool, str]:
    if got is None:
        return False, f"no {what} were exported (an earlier step failed)"
    g, w = [got[k] for k in sorted(got)], [want[k] for k in sorted(want)]
    if len(g) != len(w):
        return False, f"{len(g)} parameter arrays instead of {len(w)}"
    for a, b in zip(g, w):
        if not close(a, b):
            return False, difference(a, b)
    return True, ""


def _check_ex1(exports: Path, refs: Path) -> list[Check]:
    want = read_json(refs / "ex1.json", dict)[0]["epoch"]
    got = read_json(exports / "epoch.json", dict)[0]
    if not isinstance(got, dict):
        epoch_ok, detail = False, "load_checkpoint did not run to the end"
    else:
        epoch_ok = got.get("epoch") == want
        detail = "" if epoch_ok else (f"returned {got.get('epoch')}, saved {want}"
                                      if got.get("epoch") is not None
                                      else f"returned a {str(got.get('type'))[:40]}, not the epoch {want}")
    restored_ok, restored_detail = _same_params(read_arrays(exports / "restored.safetensors")[0],
                                                read_arrays(refs / "ex1-stop.safetensors")[0],
                                                "restored parameters")
    resumed_ok, resumed_detail = _same_params(read_arrays(exports / "resumed.safetensors")[0],
                                              read_arrays(refs / "ex1-final.safetensors")[0],
                                              "parameters after resuming")
    return [
        Check("load_checkpoint returns the saved epoch", epoch_ok, detail),
        Check("the restored model has the saved parameters", restored_ok, restored_detail),
        Check("training on from the checkpoint ends exactly like a run that never stopped "
              "(parameters, trainer state and generator restored)", resumed_ok, resumed_detail),
    ]


EX2_SHAPES = sorted([(64, 20), (64,), (32, 64), (32,), (8, 32), (8,), (4, 8), (4,), (3, 4), (3,)])


def _check_ex2(exports: Path, refs: Path) -> list[Check]:
    saved = read_arrays(refs / "ex2-reused.safetensors")[0]
    output = read_json(exports / "output.json", dict)[0]
    output = output if isinstance(output, dict) else None
    before = read_arrays(exports / "before.safetensors")[0]
    after = read_arrays(exports / "after.safetensors")[0]
    used = read_json(exports / "used.json", list)[0]
    missing = "reuse_layers did not return a model that could be called on a batch"

    shape_ok = output is not None and output.get("shape") == [256, 3]
    shape_detail = (missing if output is None else
                    "" if shape_ok else f"output shape {tuple(output.get('shape') or ())} for 256 examples")
    if before is None or not isinstance(used, list):
        layers_ok, layers_detail, used_keys = False, missing, []
    else:
        used_keys = [k for k in used if isinstance(k, str) and k in before]
        shapes = sorted(tuple(before[k].shape) for k in used_keys)
        layers_ok = shapes == EX2_SHAPES
        layers_detail = "" if layers_ok else f"parameter shapes {shapes}"[:300]

    # the reused arrays: among the parameters the output depends on, by value and shape
    found = {}
    for name, value in saved.items():
        for k in used_keys:
            if k not in found.values() and close(before[k], value):
                found[name] = k
                break
    lost = [n for n in saved if n not in found]
    reused_ok = before is not None and not lost
    reused_detail = (missing if before is None else
                     "" if reused_ok else "not found among the parameters used: " + ", ".join(lost))

    if before is None or after is None:
        frozen_ok = trained_ok = False
        frozen_detail = trained_detail = "training the returned model failed" if before is not None else missing
    else:
        moved = [n for n, k in found.items() if k not in after or not close(after[k], before[k])]
        frozen_ok = reused_ok and not moved
        frozen_detail = ("the saved layers were not found" if not reused_ok else
                         "" if frozen_ok else "changed by training: " + ", ".join(moved))
        new = [k for k in used_keys if k not in found.values()]
        # before and after come from the same process: any change at all is training
        still = [tuple(before[k].shape) for k in new if k in after and np.array_equal(after[k], before[k])]
        trained_ok = bool(new) and not still and all(k in after for k in new)
        trained_detail = ("" if trained_ok else "no new layers" if not new else
                          f"unchanged by training: parameters of shape {still}"[:300])
    return [
        Check("the new model gives 3 scores per example", shape_ok, shape_detail),
        Check("its layers are 20 -> 64 -> 32 (reused), then 8 -> 4 -> 3 (new)", layers_ok, layers_detail),
        Check("the reused layers carry the saved weights and biases", reused_ok, reused_detail),
        Check("training leaves the reused layers unchanged (frozen)", frozen_ok, frozen_detail),
        Check("training changes the new layers", trained_ok, trained_detail),
    ]


# Loads the exported files with the standard loader and runs them on the inputs read from
# stdin, in a child process of the check process: the model's Python code is unavailable
# there, and a file that crashes MXNet's C++ loader costs this check only.
_LOADER = """
import json, sys, warnings
sys.modules["d2l_utils"] = None  # the model's Python code is not available here
sys.modules["d2l"] = None
import numpy
if "bool" not in vars(numpy):  # MXNet 1.9.1 on NumPy 1.24+ (see d2l_utils.mxnet)
    numpy.bool = numpy.bool_


def why(exc):
    lines = [l.strip() for l in str(exc).splitlines() if l.strip()]  # MXNet: C++ trace, then why
    return f"{type(exc).__name__}: {lines[-1][:200] if lines else ''}"


def report(**kw):
    sys.stdout.write("\\nRESULT " + json.dumps(kw) + "\\n")
    sys.exit(0)


x = numpy.asarray(json.loads(sys.stdin.read()), dtype=numpy.float32)
try:
    import mxnet
    from mxnet import gluon, npx
    npx.set_np()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SymbolBlock notes it cannot infer the input's dtype
        net = gluon.SymbolBlock.imports(sys.argv[1], ["data"], sys.argv[2])
except Exception as exc:
    report(loaded=False, error=why(exc))
try:
    y = numpy.asarray(net(mxnet.np.array(x)).asnumpy(), dtype=numpy.float64)
except Exception as exc:
    report(loaded=True, ran=False, error=why(exc))
report(loaded=True, ran=True, shape=list(y.shape), y=y.ravel().tolist())
"""


def _run_exported(exports: Path, refs: Path, x: np.ndarray) -> dict:
    import subprocess

    try:
        # -I: isolated mode, so nothing from the working folder or PYTHONPATH is imported
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _LOADER, str(exports / "exported-symbol.json"),
             str(exports / "exported-0000.params")],
            input=json.dumps(x.tolist()), capture_output=True, text=True, timeout=300,
            cwd=str(refs))
    except subprocess.TimeoutExpired:
        return {"loaded": False, "error": "loading took longer than 300 s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        return {"loaded": False, "error": f"the loader crashed (exit status {proc.returncode})"}
    return json.loads(lines[-1][len("RESULT "):])


def _check_ex3(exports: Path, refs: Path) -> list[Check]:
    ref = read_arrays(refs / "ex3.safetensors")[0]
    files = [exports / "exported-symbol.json", exports / "exported-0000.params"]
    absent = [f.name.replace("exported", "path + '") + "'" for f in files if not f.is_file()]
    result = {"loaded": False, "error": "not written: " + ", ".join(absent)} if absent else \
        _run_exported(exports, refs, ref["x"])
    load_ok = bool(result.get("loaded"))
    load_detail = "" if load_ok else str(result.get("error", ""))[:300]
    if not load_ok:
        same_ok, same_detail = False, "the exported model could not be loaded"
    elif not result.get("ran"):
        same_ok, same_detail = False, str(result.get("error", ""))[:300]
    else:
        try:
            y = np.asarray(result["y"], dtype=np.float64).reshape([int(n) for n in result["shape"]])
            same_ok = close(y, ref["y"])
            same_detail = "" if same_ok else difference(y, ref["y"])
        except Exception as exc:  # noqa: BLE001
            same_ok, same_detail = False, f"malformed outputs ({type(exc).__name__})"
    return [
        Check("gluon.SymbolBlock.imports loads the exported files without the model's code",
              load_ok, load_detail),
        Check("the loaded model gives the original model's outputs on new inputs", same_ok, same_detail),
    ]


def check(grade_id: str, exports: Path, refs: Path) -> list[Check]:
    exports, refs = Path(exports), Path(refs)
    return {"mxnet-ex1-tests": _check_ex1, "mxnet-ex2-tests": _check_ex2,
            "mxnet-ex3-tests": _check_ex3}[grade_id](exports, refs)
