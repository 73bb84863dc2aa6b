"""The MXNet side of notebooks/portable-checkpoints.ipynb, run in the d2l-io-mxnet environment.

    python -m d2l_utils.portable_mxnet JOB.json

MXNet 1.9.1 needs NumPy 1.x, so it has an environment of its own (see README); the notebook
runs in d2l-io (NumPy 2) and hands MXNet its part through files. JOB.json gives the data
(``data``: an .npz with X and y; ``x``: the .npy input to compute outputs on), the MLP's
hyperparameters (``hidden``, ``steps``, ``lr``) and a list of ``models``. For each model, in
this order: build a MulMLP (``seed``), or a ReusedMLP whose reused block is a MulMLP(32, [64])
(``reused``: true); write its outputs on x to ``before``; ``train`` it (full-batch SGD, as the
notebook trains the other frameworks); ``save`` it to a safetensors file; ``load`` one (the
first ``layers`` dense layers only, if given); write its outputs (of the reused block, for a
ReusedMLP) to ``out``. The results (``RESULTS``, next to JOB.json) say, per model, which
warning the load raised, if any.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as onp

from d2l_utils import mxnet as mxu  # first: restores the NumPy alias MXNet 1.9.1 needs
from mxnet import autograd, gluon  # noqa: E402

RESULTS = "results.json"


def build(seed: int, hidden: list[int], lr: float, reused: bool = False):
    mxu.mxnet.random.seed(seed)
    if reused:
        block = mxu.MulMLP(32, [64], lr).net  # gluon wants a HybridBlock here
        model = mxu.ReusedMLP(10, [16], lr, block)
    else:
        block = model = mxu.MulMLP(10, hidden, lr)
    model(mxu.np.zeros((1, 20)))
    return model, block


def train(model, X, y, steps: int, lr: float) -> None:
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": lr})
    Xm, ym = mxu.np.array(X), mxu.np.array(y)
    for _ in range(steps):
        with autograd.record():
            loss = model.loss(model(Xm), ym)
        loss.backward()
        trainer.step(1)


def run(job: dict, folder: Path) -> list[dict]:
    mxu.npx.set_np()
    data = onp.load(folder / job["data"])
    x = mxu.np.array(onp.load(folder / job["x"]))
    results = []
    for spec in job["models"]:
        model, block = build(spec["seed"], job["hidden"], job["lr"], spec.get("reused", False))
        if "before" in spec:
            onp.save(folder / spec["before"], block(x).asnumpy())
        if spec.get("train"):
            train(model, data["X"], data["y"], job["steps"], job["lr"])
        if "save" in spec:
            mxu.save_safetensors(model, str(folder / spec["save"]))
        warned = None
        if "load" in spec:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mxu.load_safetensors(model, str(folder / spec["load"]), layers=spec.get("layers"))
            warned = caught[0].category.__name__ if caught else None
        onp.save(folder / spec["out"], block(x).asnumpy())
        results.append({"warned": warned})
    return results


def main(argv: list[str]) -> int:
    job_file = Path(argv[0]).resolve()
    results = run(json.loads(job_file.read_text()), job_file.parent)
    (job_file.parent / RESULTS).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
