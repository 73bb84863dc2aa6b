"""A writer killed (SIGKILL) at random moments while it saves over a checkpoint never leaves a
broken or mixed file: the checkpoint always loads and is exactly the old or the new content,
and the next load removes the temporary file the killed writer left.

Writers are forked from a warm server process (multiprocessing's forkserver, with NumPy and
d2l_utils already imported), so each trial costs the kill, not an interpreter start."""

import multiprocessing
import random
import time

import numpy as np

from d2l_utils.checkpoint import load_tensors, save_tensors

TRIALS = 60


def _save_forever(path, ready):
    """Save over the checkpoint again and again, alternating two versions."""
    versions = [{"w": np.full((4, 2**20), v, np.float32), "step": np.int64(v)} for v in (1, 2)]
    ready.set()
    i = 0
    while True:
        save_tensors(path, versions[i % 2], {"version": str(i % 2 + 1)})
        i += 1


def test_kill_during_save_leaves_old_or_new(tmp_path):
    path = tmp_path / "ck.safetensors"
    save_tensors(path, {"w": np.full((4, 2**20), 1, np.float32), "step": np.int64(1)}, {"version": "1"})
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["numpy", "d2l_utils.checkpoint"])
    rng = random.Random(0)
    seen, interrupted = {"1": 0, "2": 0}, 0
    for _ in range(TRIALS):
        ready = context.Event()
        writer = context.Process(target=_save_forever, args=(path, ready), daemon=True)
        writer.start()
        assert ready.wait(60), "the writer did not start"
        time.sleep(rng.uniform(0.0, 0.15))  # a 16 MB save takes a few tens of milliseconds
        writer.kill()
        writer.join()
        leftovers = [p for p in tmp_path.iterdir() if p != path]
        interrupted += bool(leftovers)
        for p in leftovers:  # what a killed save leaves: its hidden temporary file, never a
            # file under the final name
            assert p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp"), p.name
        tensors, meta = load_tensors(path)  # raises if the file were broken
        # ... and the load removed the temporary files whose writer is dead
        assert sorted(tmp_path.iterdir()) == [path], "an orphaned temporary file was left"
        v = int(meta["version"])
        assert int(tensors["step"]) == v and np.all(tensors["w"] == v), "a mix of two versions"
        seen[meta["version"]] += 1
    assert sum(seen.values()) == TRIALS
    assert interrupted >= TRIALS // 2, f"only {interrupted} of {TRIALS} kills hit a save"
    print(f"{TRIALS} kills, {interrupted} during a save; found old/new: {seen}")
