"""Grading of the PyTorch assignment (solutions/pytorch/exercises.ipynb); protocol: grading.checks.

The interface each prompt states, and nothing else, is what the export code uses:

* ex1: `save_checkpoint(path, model, optimizer, generator, epoch)` and
  `load_checkpoint(path, model, optimizer, generator) -> epoch`; `path` is a string naming a
  place in an existing folder (a file, files starting with it, or a folder);
* ex2: `reuse_layers(path) -> (new_model, optimizer)`, `path` a file written by
  `torch.save(model.state_dict(), path)` for a `MulMLP(**HPARAMS)`;
* ex3: `export_model(model, example_input, path) -> None`, the file at `path` run by
  `torch.export.load(path).module()`.

Exercise 3's file is untrusted and `torch.export.load` is not a safe loader: it can unpickle
objects, evaluates symbolic-shape strings with sympy and runs Python "guards" code. So the
check first scans the archive (zip and JSON only), then loads it in a child process with
pickles refused, guards dropped and no way to import the model's code, on inputs sent to it;
the expected outputs never leave this process.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from grading.checks import Check, Reload, close, difference, read_arrays, read_json
from grading.limits import MAX_CHECKED_FILE


HELPERS = r'''
import numpy as np
import torch

import d2l_utils
from d2l_utils import torch as d2l

HPARAMS = {"num_outputs": 10, "num_hiddens": [64, 32], "lr": 0.1}
STOP, MORE = 2, 2    # ex1: epochs before the interruption, epochs after it
NEW_HIDDENS, NEW_CLASSES = [8, 4], 3  # ex2: the new model
STEPS = 5            # ex2: training steps with the student's optimizer
EXAMPLE_ROWS = 8     # ex3: rows of the example input


def make_data(seed):
    X, y = d2l_utils.make_classification(n=256, num_inputs=20, num_classes=10, seed=seed)
    return torch.from_numpy(X), torch.from_numpy(y)


def make_model(seed, X):
    """A MulMLP(**HPARAMS) with materialised layers and SGD with momentum; seeded without
    changing the process's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = d2l.MulMLP(**HPARAMS)
        model(X[:1])
    return model, torch.optim.SGD(model.parameters(), lr=HPARAMS["lr"], momentum=0.9)


def train(model, optimizer, generator, X, y, epochs, batch_size=64):
    with torch.enable_grad():
        for _ in range(epochs):
            for idx in torch.randperm(len(X), generator=generator).split(batch_size):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
                optimizer.step()


def trained_model(seed, X, y, epochs=1):
    model, optimizer = make_model(seed, X)
    train(model, optimizer, torch.Generator().manual_seed(seed + 1), X, y, epochs)
    return model.eval()


def unseen_inputs(seed):
    X, _ = d2l_utils.make_classification(n=EXAMPLE_ROWS, num_inputs=20, num_classes=10,
                                         seed=seed + 7)
    return torch.from_numpy(X)


def arrays(tensors, prefix=""):
    """{prefix + name: a copy as a contiguous numpy array}, for safetensors."""
    return {prefix + str(k): np.array(v.detach().cpu().numpy(), order="C", copy=True)
            for k, v in tensors.items()}


def momentum(optimizer):
    return {i: s["momentum_buffer"] for i, s in optimizer.state_dict()["state"].items()
            if isinstance(s.get("momentum_buffer"), torch.Tensor)}


def next_permutation(generator, n):
    """The next shuffle the generator would draw, without advancing it."""
    probe = torch.Generator()
    probe.set_state(generator.get_state())
    return torch.randperm(n, generator=probe)
'''

EXPORTS = {
    "pytorch-ex1-tests": """
        import os
        import torch
        save_checkpoint = student("save_checkpoint")
        X, y = h["make_data"](seed)
        model, optimizer = h["make_model"](seed, X)
        generator = torch.Generator().manual_seed(seed + 1)
        h["train"](model, optimizer, generator, X, y, h["STOP"])
        folder = out / "saved"
        folder.mkdir()
        save_checkpoint(str(folder / "checkpoint"), model, optimizer, generator, h["STOP"])
        if not os.listdir(folder):
            raise RuntimeError("save_checkpoint(path, ...) wrote nothing at path")
    """,
    "pytorch-ex2-tests": """
        import json
        import torch
        from safetensors.numpy import save_file
        reuse_layers = student("reuse_layers")
        X, y = h["make_data"](seed)
        path = scratch("pretrained") / "saved-mlp.params"
        torch.save(h["trained_model"](seed + 20, X, y).state_dict(), path)
        result = reuse_layers(str(path))
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError("reuse_layers(path) must return (new_model, optimizer)")
        model, optimizer = result
        with torch.no_grad():
            shape = list(model(X).shape)
        params = list(model.parameters())
        (out / "ex2.json").write_text(json.dumps({"output_shape": shape, "rows": len(X)}))
        save_file(h["arrays"](dict(enumerate(params))), str(out / "before.safetensors"))
        target = y % h["NEW_CLASSES"]
        with torch.enable_grad():
            for _ in range(h["STEPS"]):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(X), target).backward()
                optimizer.step()
        save_file(h["arrays"](dict(enumerate(params))), str(out / "after.safetensors"))
    """,
    "pytorch-ex3-tests": """
        import shutil
        export_model = student("export_model")
        X, y = h["make_data"](seed)
        model = h["trained_model"](seed + 30, X, y)
        path = scratch("export") / "model.pt2"
        export_model(model, X[:h["EXAMPLE_ROWS"]].clone(), str(path))
        if not path.is_file():
            raise FileNotFoundError("export_model(model, example_input, path) wrote no file at path")
        shutil.copyfile(path, out / "model.pt2")
    """,
}


# Exercise 1's loading half: in a fresh kernel, on a copy of the saved files at a new path, with
# fresh objects of other values: only the files can carry the state.
RELOADS = {
    "pytorch-ex1-tests": Reload("""
        import json
        import torch
        from safetensors.numpy import save_file
        load_checkpoint = student("load_checkpoint")
        X, y = h["make_data"](seed)
        model, optimizer = h["make_model"](seed + 100, X)
        generator = torch.Generator()
        epoch = load_checkpoint(str(saved / "saved" / "checkpoint"), model, optimizer, generator)
        try:
            value = None if isinstance(epoch, (bool, str, bytes)) else float(epoch)
        except Exception:
            value = None
        (out / "ex1.json").write_text(json.dumps({"epoch": value, "returned": repr(epoch)[:60]}))
        save_file(h["arrays"](model.state_dict()), str(out / "restored.safetensors"))
        save_file(h["arrays"](h["momentum"](optimizer)), str(out / "momentum.safetensors"))
        save_file({"next": h["next_permutation"](generator, len(X)).numpy()},
                  str(out / "generator.safetensors"))
        h["train"](model, optimizer, generator, X, y, h["MORE"])
        save_file(h["arrays"](model.state_dict()), str(out / "resumed.safetensors"))
    """, ("saved/checkpoint",)),
}


def reference(seed: int, out: Path) -> None:
    """Everything the checks compare against, computed here with HELPERS."""
    import torch
    from safetensors.numpy import save_file

    h: dict = {}
    exec(HELPERS, h)
    out = Path(out)
    X, y = h["make_data"](seed)

    # ex1: the state at the interruption, and the run that never stopped
    model, optimizer = h["make_model"](seed, X)
    generator = torch.Generator().manual_seed(seed + 1)
    h["train"](model, optimizer, generator, X, y, h["STOP"])
    ex1 = {**h["arrays"](model.state_dict(), "saved."),
           **h["arrays"](h["momentum"](optimizer), "momentum."),
           "next": h["next_permutation"](generator, len(X)).numpy()}
    h["train"](model, optimizer, generator, X, y, h["MORE"])
    ex1.update(h["arrays"](model.state_dict(), "final."))
    save_file(ex1, str(out / "ex1.safetensors"))
    (out / "ex1.json").write_text(json.dumps({"epoch": h["STOP"]}))

    # ex2: the first linear layer of the saved MulMLP
    saved = h["trained_model"](seed + 20, X, y)
    first = next(m for m in saved.modules() if isinstance(m, torch.nn.Linear))
    save_file(h["arrays"]({"weight": first.weight, "bias": first.bias}),
              str(out / "ex2.safetensors"))
    shapes, fan_in = [list(first.weight.shape), list(first.bias.shape)], first.weight.shape[0]
    for width in [*h["NEW_HIDDENS"], h["NEW_CLASSES"]]:
        shapes += [[width, fan_in], [width]]
        fan_in = width
    (out / "ex2.json").write_text(json.dumps({"shapes": shapes, "outputs": h["NEW_CLASSES"]}))

    # ex3: the model handed to export_model, and inputs it never sees (only these count: the
    # outputs on its example input could be memorised)
    model = h["trained_model"](seed + 30, X, y)
    unseen = h["unseen_inputs"](seed)
    with torch.no_grad():
        ex3 = {"unseen": unseen, "unseen_out": model(unseen)}
    save_file(h["arrays"](ex3), str(out / "ex3.safetensors"))


# ---------------------------------------------------------------------------------------------
# Safe reading of untrusted exports


def _compare(got: dict[str, np.ndarray] | None, why: str, want: dict[str, np.ndarray]) -> tuple[bool, str]:
    """Same names (of the grader's own objects), shapes and values."""
    if got is None:
        return False, why
    missing = sorted(set(want) - set(got))
    if missing:
        return False, f"missing: {', '.join(missing[:4])}"
    bad = [(k, difference(got[k], want[k])) for k in sorted(want) if not close(got[k], want[k])]
    if bad:
        return False, "; ".join(f"{k}: {d}" for k, d in bad[:3])
    return True, ""


def _prefixed(refs: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in refs.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------------------------
# Checks


def _check_ex1(exports: Path, refs: Path) -> list[Check]:
    ref, _ = read_arrays(refs / "ex1.safetensors")
    info, why = read_json(exports / "ex1.json", dict)
    epoch = info.get("epoch") if info else None
    stop = json.loads((refs / "ex1.json").read_text())["epoch"]
    ok = isinstance(epoch, (int, float)) and epoch == stop
    checks = [Check("load_checkpoint returns the epoch that was saved", ok,
                    why if info is None else "" if ok else
                    f"it returned {str(info.get('returned'))[:60]}, not {stop}")]
    ok, detail = _compare(*read_arrays(exports / "restored.safetensors"), _prefixed(ref, "saved."))
    checks.append(Check("the restored model has the saved parameters", ok, detail))
    want = {f"buffer {k}": v for k, v in _prefixed(ref, "momentum.").items()}
    got, why = read_arrays(exports / "momentum.safetensors")
    got = None if got is None else {f"buffer {k}": v for k, v in got.items()}
    if got is not None and not got:
        ok, detail = False, "the optimizer has no momentum buffers after loading"
    else:
        ok, detail = _compare(got, why, want)
    checks.append(Check("the restored optimizer has the saved momentum buffers", ok, detail))
    got, why = read_arrays(exports / "generator.safetensors")
    ok = got is not None and "next" in got and np.array_equal(got["next"], ref["next"])
    checks.append(Check("the restored generator continues the saved random sequence", ok,
                        why if got is None else "" if ok else
                        "its next shuffle differs from the saved generator's"))
    ok, detail = _compare(*read_arrays(exports / "resumed.safetensors"), _prefixed(ref, "final."))
    checks.append(Check("training resumed from the checkpoint ends where an unbroken run ends",
                        ok, detail))
    return checks


def _layout(shape) -> tuple[int, ...]:
    """A shape up to the order of its axes (a dense layer's weight may be stored transposed)."""
    return tuple(sorted(shape))


def _find(params: dict[str, np.ndarray], target: np.ndarray) -> str | None:
    for key, value in params.items():
        for candidate in (value, value.T):
            if close(candidate, target):
                return key
    return None


def _check_ex2(exports: Path, refs: Path) -> list[Check]:
    ref, _ = read_arrays(refs / "ex2.safetensors")
    spec, _ = read_json(refs / "ex2.json", dict)
    info, why_info = read_json(exports / "ex2.json", dict)
    before, why_before = read_arrays(exports / "before.safetensors")
    after, why_after = read_arrays(exports / "after.safetensors")

    # 1. the saved first layer, by value, in any parameter of the new model
    found = {}
    if before is not None:
        found = {name: _find(before, ref[name]) for name in ("weight", "bias")}
    carried = before is not None and all(found.values())
    checks = [Check("new_model carries the saved first linear layer (weight and bias)", carried,
                    why_before if before is None else "" if carried else
                    "no parameter of new_model equals the saved " +
                    " and ".join(n for n, k in found.items() if k is None))]

    # 2. the architecture: output shape and the multiset of parameter shapes
    if info is None or before is None:
        ok, detail = False, why_info if info is None else why_before
    else:
        want_out = [info.get("rows"), spec["outputs"]]
        got_shapes = sorted(_layout(v.shape) for v in before.values())
        want_shapes = sorted(_layout(s) for s in spec["shapes"])
        if info.get("output_shape") != want_out:
            ok, detail = False, f"output shape {info.get('output_shape')}, expected {want_out}"
        elif got_shapes != want_shapes:
            ok, detail = False, f"parameter shapes {got_shapes}, expected {want_shapes}"
        else:
            ok, detail = True, ""
    checks.append(Check("new_model has hidden widths [8, 4] after the reused layer and 3 outputs",
                        ok, detail))

    # 3. frozen: the reused arrays unchanged by the student's optimizer, the others trained
    if before is None or after is None or set(before) != set(after):
        ok, detail = False, why_after if after is None else why_before if before is None else \
            "the parameters changed in number during training"
    else:
        reused = {k for k in found.values() if k is not None}
        if not carried:  # grade the freezing even if the values are wrong: find them by shape
            shapes = {_layout(ref[n].shape) for n in ("weight", "bias")}
            reused = {k for k, v in before.items() if _layout(v.shape) in shapes}
        moved = {k for k in before if not np.array_equal(before[k], after[k])}
        if not reused:
            ok, detail = False, "the reused layer was not found among new_model's parameters"
        elif reused & moved:
            ok, detail = False, "the reused layer changed during training"
        elif set(before) - reused - moved:
            ok, detail = False, (f"{len(set(before) - reused - moved)} parameter arrays of the "
                                 "new layers did not change during training")
        else:
            ok, detail = True, ""
    checks.append(Check("training with your optimizer changes only the new layers "
                        "(the reused layer stays frozen)", ok, detail))
    return checks


# Exercise 3: the exported program is untrusted; see the module's docstring.

_TARGETS = re.compile(
    r"torch\.ops\.(aten|prims|higher_order)\.[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?"
    r"|_operator\.(getitem|add|sub|mul|floordiv|truediv|mod|pow|neg|pos|abs|eq|ne|lt|le|gt|ge"
    r"|and_|or_|xor|not_|invert|lshift|rshift)"
    r"|math\.[a-z][a-z0-9_]*"
    r"|torch\.(sym_[a-z_]+|_sym_sqrt)")
# sympy's srepr, e.g. "Add(Symbol('s31', positive=True, integer=True), Integer(1))": quoted
# strings only as symbol names or numbers, names only from the list below.
_EXPR_TOKEN = re.compile(r"\s+|\d+(\.\d+)?([eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|\*\*"
                         r"|'([a-z]\d+|[-+]?\d+(\.\d+)?([eE][-+]?\d+)?)'|[-+*/%(),<>=!&|~]")
_EXPR_NAMES = {
    "Max", "Min", "FloorDiv", "CeilDiv", "Mod", "PythonMod", "ModularIndexing", "CleanDiv",
    "IntTrueDiv", "FloatTrueDiv", "ToFloat", "TruncToInt", "TruncToFloat", "RoundToInt",
    "FloorToInt", "CeilToInt", "Identity", "Abs", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And",
    "Or", "Not", "floor", "ceiling", "sqrt", "oo", "True", "False", "Integer", "Rational",
    "Pow", "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "Symbol",
    "Add", "Mul", "Float", "precision", "positive", "negative", "nonnegative", "nonpositive",
    "integer", "real", "finite", "zero", "nonzero", "even", "odd", "commutative"}


def _safe_expr(text: str) -> bool:
    pos = 0
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if not m:
            return False
        word = m.group()
        if (word[0].isalpha() or word[0] == "_") and not (
                word in _EXPR_NAMES or re.fullmatch(r"[a-z]\d+", word)):
            return False
        pos = m.end()
    return True


def _unsafe_part(doc, where: str) -> str | None:
    """What in a JSON document of the archive the loader would turn into code, if anything.
    Strings that hold JSON (pytree specs and their contexts, node metadata) are decoded and
    searched too. Provenance records ("from_node": which node a node came from, kept as
    plain strings by the loader) may name the original call in any spelling."""
    stack = [(doc, False)]
    while stack:
        item, provenance = stack.pop()
        if isinstance(item, str):
            if item.lstrip()[:1] in ("[", "{", '"'):
                try:
                    stack.append((json.loads(item), provenance))
                except ValueError:
                    pass
        elif isinstance(item, list):
            stack.extend((x, provenance) for x in item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if key in ("__enum__", "default_factory_module"):
                    return f"{where} names Python objects to import"
                if key == "target" and not provenance and not (
                        isinstance(value, str) and _TARGETS.fullmatch(value)):
                    return f"{where} calls {str(value)[:60]!r}, which is not a PyTorch operator"
                if key == "expr_str" and not (isinstance(value, str) and _safe_expr(value)):
                    return f"{where} holds a shape expression that is not arithmetic"
                if key == "use_pickle" and value is not False:
                    return f"{where} stores pickled tensors"
                if key == "path_name" and not (isinstance(value, str) and re.fullmatch(
                        r"(weight|tensor)_\d+", value)):
                    return f"{where} stores pickled objects ({str(value)[:40]})"
                stack.append((value, provenance or key == "from_node"))
    return None


def _scan_archive(path: Path) -> str | None:
    """None if the archive holds only what torch.export.save writes for plain tensors and
    PyTorch operators (read with zipfile and json only), else why not."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not any(i.filename.endswith(("/models/model.json", "serialized_exported_program.json"))
                       for i in infos):
                return "not a torch.export archive (torch.export.save writes one)"
            if len(infos) > 4096 or sum(i.file_size for i in infos) > 4 * MAX_CHECKED_FILE:
                return "the archive is too large"
            for info in infos:
                if info.file_size > MAX_CHECKED_FILE:
                    return "the archive is too large"
                try:
                    doc = json.loads(archive.read(info))
                except ValueError:
                    continue
                reason = _unsafe_part(doc, info.filename.rsplit("/", 1)[-1])
                if reason:
                    return reason
    except zipfile.BadZipFile:
        return "not a torch.export archive (not a zip file)"
    except Exception as err:
        return f"the archive cannot be read ({type(err).__name__})"
    return None


_RUNNER = r'''
import json, pickle, sys
for name in ("d2l_utils", "d2l"):
    sys.modules[name] = None  # the model's Python code is not available here
import numpy as np
import torch

_load = torch.load


def _weights_only(*args, **kwargs):
    kwargs["weights_only"] = True
    return _load(*args, **kwargs)


def _refuse(*args, **kwargs):
    raise pickle.UnpicklingError("pickled objects are not accepted")


torch.load = _weights_only
pickle.loads = pickle.load = _refuse
torch._C._pickle_load_obj = _refuse
result = {}
try:
    program = torch.export.load(sys.argv[1])
    program._guards_code = []  # Python source in the file: never run it
    module = program.module()
    with torch.no_grad():
        for name in sys.argv[2:]:
            y = module(torch.from_numpy(np.load(name + ".npy", allow_pickle=False)))
            if isinstance(y, (tuple, list)) and len(y) == 1:
                y = y[0]
            result[name] = np.asarray(y.detach().numpy(), dtype=np.float64).tolist()
except BaseException as err:
    result = {"error": (type(err).__name__ + ": " + (str(err).splitlines() or [""])[0])[:200]}
sys.stdout.write("\nRESULT " + json.dumps(result) + "\n")
'''


def _small_files() -> None:
    """In the loader's process: no file larger than MAX_CHECKED_FILE (a write past it fails)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_CHECKED_FILE, MAX_CHECKED_FILE))


def _run_exported(path: Path, inputs: dict[str, np.ndarray]) -> tuple[dict | None, str]:
    """Load and run the archive in a child process: ({name: outputs}, "") or (None, why)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.pt2"
        archive.write_bytes(path.read_bytes())
        for name, x in inputs.items():
            np.save(Path(tmp) / f"{name}.npy", x)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
               "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": tmp}
        try:
            proc = subprocess.run([sys.executable, "-I", "-B", "-c", _RUNNER, str(archive), *inputs],
                                  cwd=tmp, env=env, capture_output=True, text=True, timeout=240,
                                  preexec_fn=_small_files, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None, "loading and running the file took too long"
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        return None, f"the loader stopped (exit {proc.returncode})"
    try:
        result = json.loads(lines[-1][len("RESULT "):])
    except ValueError:
        return None, "the loader's answer cannot be read"
    if "error" in result:
        return None, str(result["error"])
    try:
        return {k: np.asarray(result[k], dtype=np.float64) for k in inputs}, ""
    except Exception:
        return None, "the loaded module did not return arrays"


def _check_ex3(exports: Path, refs: Path) -> list[Check]:
    ref, _ = read_arrays(refs / "ex3.safetensors")
    path = exports / "model.pt2"
    wrote = path.is_file() and 0 < path.stat().st_size <= 4 * MAX_CHECKED_FILE
    checks = [Check("export_model writes a file at path", wrote,
                    "" if wrote else "no file at path (the export stopped earlier)")]
    outputs, why = None, "there is no file to load"
    if wrote:
        why = _scan_archive(path)
        if why is None:
            outputs, why = _run_exported(path, {"unseen": ref["unseen"]})
    checks.append(Check("torch.export.load(path).module() runs it without the model's Python code",
                        outputs is not None, why if outputs is None else ""))
    # Only inputs the export never saw: outputs on the example input can be memorised.
    got, want = (outputs or {}).get("unseen"), ref["unseen_out"]
    ok = got is not None and close(got, want)
    checks.append(Check("its outputs on inputs it never saw equal the model's", ok,
                        why if got is None else "" if ok else difference(got, want)))
    return checks


_CHECKS = {"pytorch-ex1-tests": _check_ex1, "pytorch-ex2-tests": _check_ex2,
           "pytorch-ex3-tests": _check_ex3}


def check(grade_id: str, exports: Path, refs: Path) -> list[Check]:
    return _CHECKS[grade_id](Path(exports), Path(refs))
