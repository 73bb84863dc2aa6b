"""Sharded checkpoints (notebooks/sharded-checkpoints.ipynb and the programs it runs,
d2l_utils/sharded/).

* The kill test: Orbax training runs that save asynchronously at every step are killed
  (SIGKILL) at random moments, TRIALS of them at once; a kill must have landed while a save
  was being written (its step folder still has its temporary name), and in every run the
  newest finished checkpoint must restore to exactly the parameters of its step.
* Bad input: a DCP checkpoint with a file missing or cut short, never finished, or loaded
  into a model of another shape; an Orbax checkpoint with a data file missing or cut short,
  each is one CheckpointError naming the file, the shard or the array. (An Orbax checkpoint
  restored into another shape is shown in the notebook, whose outputs nbval compares.)
  Output folders outside the scratch folder are refused.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest


JAX = [sys.executable, "-m", "d2l_utils.sharded.jax_orbax"]
TRIALS = 3  # training runs killed at random moments (at once: each one a process)
TMP = ".orbax-checkpoint-tmp"


def _steps(run_dir):
    """(finished steps, steps whose save was cut off) in a CheckpointManager's folder."""
    names = [p.name for p in run_dir.iterdir()]
    return (sorted(int(n) for n in names if n.isdigit()),
            sorted(int(n.split(".")[0]) for n in names if TMP in n))


def _kill_at_random(proc, rng, stderr):
    """Let the run start 2 to 5 saves, wait 0 to 20 ms more, and SIGKILL it."""
    for _ in range(rng.randint(2, 5)):
        line = proc.stdout.readline()
        if not line.endswith("save started\n"):
            proc.wait()
            pytest.fail(f"the training run stopped early: {line!r}\n{stderr.read_text()[-3000:]}")
    time.sleep(rng.uniform(0, 0.02))
    proc.kill()
    proc.wait()


def _check(env, *args):
    return subprocess.Popen([*JAX, "check", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(proc, names):
    out, err = proc.communicate(timeout=120)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(lines) == len(names), err[-3000:]
    return dict(zip(names, lines))


def _damage(src, dst, how):
    """A copy of the run folder `src`, with one data file of its newest step deleted or cut
    to half its length."""
    shutil.copytree(src, dst)
    newest = max(_steps(dst / "run")[0])
    data = max((p for p in (dst / "run" / str(newest)).rglob("*")
                if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size)
    if how == "missing":
        data.unlink()
    else:
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def test_a_kill_during_an_async_save_leaves_the_previous_checkpoint(notebook_env, tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    scratch = tmp_path / "scratch"
    # Every step is saved (the manager waits for one save to finish before it starts the
    # next): a save is being written almost all the time, so random kills land inside one.
    stderrs = [tmp_path / f"kill{i}.stderr" for i in range(TRIALS)]
    procs = []
    for i, stderr in enumerate(stderrs):
        with stderr.open("w") as err:
            procs.append(subprocess.Popen(
                [*JAX, "train", f"kill{i}", "--steps", "100000",
                 "--every", "1", "--keep", "3"], env=notebook_env, stdout=subprocess.PIPE,
                stderr=err, text=True))
    try:
        with ThreadPoolExecutor(TRIALS) as pool:
            list(pool.map(_kill_at_random, procs, [random.Random(rng.random()) for _ in procs],
                          stderrs))
    finally:
        for proc in procs:
            proc.kill()
    left = {f"kill{i}": _steps(scratch / f"kill{i}" / "run") for i in range(TRIALS)}

    # The checker must be able to say no: the same run with a data file of its newest step
    # missing or cut short gives an error naming the checkpoint and the array. (Restoring
    # into a model of another shape is shown, and so compared, in the notebook.)
    _damage(scratch / "kill0", scratch / "missing", "missing")
    _damage(scratch / "kill0", scratch / "truncated", "truncated")
    names = [*left, "missing", "truncated"]
    found = _results(_check(notebook_env, *names), names)

    why = f"(random seed {seed}; finished and cut-off steps per run: {left})"
    # A kill lands between two saves only in the few milliseconds from one save's rename to
    # the next one's start: rarely, but all three trials doing so would leave nothing tested.
    assert any(cut for _, cut in left.values()), f"no kill landed during a save {why}"
    for name, (finished, cut) in left.items():
        assert found[name] == {"steps": finished, "step": max(finished), "equal": True}, (
            f"{name}: {found[name]} {why}")
        assert all(step > max(finished) for step in cut), f"{name}: an older save was cut {why}"
    for name in ("missing", "truncated"):
        error = found[name].get("error", "")
        assert error.startswith(f"{scratch / name / 'run'}/") and 'reading "params.Dense_' in error, (
            f"{name}: {found[name]}")


@pytest.fixture(scope="module")
def torch_dcp():
    from d2l_utils.sharded import torch_dcp

    return torch_dcp


@pytest.fixture
def dcp_checkpoint(torch_dcp, tmp_path):
    """A DCP checkpoint of the MLP written as two files (two writer threads, as two ranks
    would write two), and the model it was saved from."""
    import torch.distributed.checkpoint as dcp

    model, path = torch_dcp.mlp(seed=0), tmp_path / "checkpoint"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled")
        dcp.save({"model": model.state_dict()},
                 storage_writer=dcp.FileSystemWriter(path, thread_count=2))
    assert sorted(p.name for p in path.iterdir()) == [".metadata", "__0_0.distcp", "__0_1.distcp"]
    return model, path


def _same(a, b):
    import torch

    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_good_dcp_checkpoint_loads(torch_dcp, dcp_checkpoint):
    model, path = dcp_checkpoint
    fresh = torch_dcp.mlp(seed=1)
    assert not _same(fresh, model)
    assert _same(torch_dcp.load_into(fresh, path), model)


@pytest.mark.parametrize("damage", ["missing", "truncated", "unfinished"])
def test_a_damaged_dcp_checkpoint_names_the_file(torch_dcp, dcp_checkpoint, damage):
    from d2l_utils.checkpoint import CheckpointError

    _, path = dcp_checkpoint
    shard = path / "__0_1.distcp"
    if damage == "missing":
        shard.unlink()
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-1])
    else:  # rank 0 died before writing .metadata, which comes last
        (path / ".metadata").unlink()
    fresh = torch_dcp.mlp(seed=1)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointError) as caught:
        torch_dcp.load_into(fresh, path)
    expected = {"missing": (shard, "missing: it holds "),
                "truncated": (shard, "truncated: "),
                "unfinished": (path, "no .metadata: not a finished DCP checkpoint")}[damage]
    assert (caught.value.path, caught.value.problem[:len(expected[1])]) == expected, caught.value
    assert all((before[k] == v).all() for k, v in fresh.state_dict().items())


def test_another_shape_names_the_tensor(torch_dcp, dcp_checkpoint):
    from d2l_utils.checkpoint import CheckpointError

    _, path = dcp_checkpoint
    with pytest.raises(CheckpointError) as caught:
        torch_dcp.load_into(torch_dcp.mlp((20, 128, 32, 10)), path)
    assert caught.value.path == path
    assert caught.value.problem == ("rank 0: Size mismatch between saved torch.Size([64, 20]) "
                                    "and current: torch.Size([128, 20]) for model.0.weight")


@pytest.mark.parametrize("name", ["../elsewhere", "/tmp/elsewhere", "a/../../elsewhere"])
def test_output_folders_stay_in_the_scratch_folder(torch_dcp, tmp_path, monkeypatch, name):
    monkeypatch.setenv("D2L_SCRATCH", str(tmp_path / "scratch"))
    with pytest.raises(SystemExit, match="must be below the scratch folder"):
        torch_dcp.output_folder(name)
    assert torch_dcp.output_folder("a/b") == tmp_path / "scratch" / "a" / "b"
    assert not (tmp_path / "elsewhere").exists()


def test_dcp_writes_one_standard_safetensors_file(torch_dcp, tmp_path):
    """save_safetensors (what the training ranks run; here one process) leaves one ordinary
    safetensors file of full tensors under the portable layout's names, which
    d2l_utils.portable reads without any DCP code."""
    from d2l_utils.checkpoint import UncheckedCheckpointWarning
    from d2l_utils.portable import load_layers

    model = torch_dcp.mlp(seed=0)
    assert torch_dcp.portable_names(model.state_dict()) == {
        "0.weight": "dense0.weight", "0.bias": "dense0.bias", "2.weight": "dense1.weight",
        "2.bias": "dense1.bias", "4.weight": "dense2.weight", "4.bias": "dense2.bias"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled")
        path = torch_dcp.save_safetensors(model, tmp_path / "hf")
    assert path.is_file() and (path.parent / "model.safetensors.index.json").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncheckedCheckpointWarning)
        layers, _ = load_layers(path, [(64, 20), (32, 64), (10, 32)])
    linears = [m for m in model if hasattr(m, "weight")]
    for (w, b), linear in zip(layers, linears, strict=True):
        assert np.array_equal(w, linear.weight.detach().numpy())
        assert np.array_equal(b, linear.bias.detach().numpy())
