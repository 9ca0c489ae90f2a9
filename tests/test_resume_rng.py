"""A run killed (kill -9) after an epoch and resumed equals the uninterrupted run bit for bit, also for the
trainers whose sample order and augmentations come from the process-wide generators (the CoOp family): every
checkpoint carries those generators' states (engine/rng_states.py) and a resume restores them. A checkpoint
written before (no states) still resumes, with one warning."""
import json
import re
import shutil
import sys

import numpy as np
import pytest
import torch

from engine import rng_states
from tests.conftest import kill_and_resume, train_here
from tests.toy_runs import prompt_args

# three epochs, the kill after the second (tests/conftest.py kill_and_resume); a learning rate that moves
# the context visibly in a few steps, and one batch per epoch
SHORT = ["OPTIM.MAX_EPOCH", 3, "OPTIM.LR", 0.5, "OPTIM.WARMUP_EPOCH", 0, "DATALOADER.TRAIN_X.BATCH_SIZE", 8,
         "TRAIN.PRINT_FREQ", 1, "USE_CUDA", False]
TIMING = re.compile(r" (time|data|eta) \S+( \(\S+\))?")


def epoch_lines(text):
    """The training progress lines (epoch, batch, loss, accuracy, lr) without their timings."""
    return [TIMING.sub("", line) for line in text.splitlines() if line.startswith("epoch [")]


def checkpoint(folder, epoch=3):
    return torch.load(folder / "prompt_learner" / f"model.pth.tar-{epoch}", weights_only=True)


@pytest.mark.slow  # three train.py runs (one a subprocess) per method
@pytest.mark.parametrize("method", ["CoOp", "MaPLe"])
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one(method, toy_root, tmp_path):
    def argv(out):
        return [sys.executable, "train.py", *prompt_args(method, toy_root, out, *SHORT)]

    def keep_an_old_style_copy(killed):
        """The killed folder as older code would have left it: a checkpoint without generator states."""
        old = tmp_path / "old"
        shutil.copytree(killed, old)
        saved = checkpoint(old, 2)
        assert len(saved[rng_states.CHECKPOINT_KEY]) == 1  # one process, one entry
        del saved[rng_states.CHECKPOINT_KEY]
        torch.save(saved, old / "prompt_learner" / "model.pth.tar-2")

    whole, killed, resumed = kill_and_resume(argv, tmp_path, after_kill=keep_an_old_style_copy)
    assert "Previous epoch: 2" in resumed.stdout and "epoch [1/3]" not in resumed.stdout
    assert "cannot continue the random number generators" not in resumed.stdout
    a, b = checkpoint(whole), checkpoint(killed)
    assert set(a["state_dict"]) == set(b["state_dict"])
    for key in a["state_dict"]:  # every learned tensor
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    logs = [epoch_lines((d / "log.txt").read_text()) for d in (whole, killed)]
    assert {line.split(" batch")[0] for line in logs[0]} == {"epoch [1/3]", "epoch [2/3]", "epoch [3/3]"}
    assert logs[0] == logs[1]  # the killed run's epochs 1-2, then the resumed epoch 3: every loss and accuracy
    results = [json.loads((d / "results.json").read_text()) for d in (whole, killed)]
    assert results[0]["accuracy"] == results[1]["accuracy"]
    assert results[0]["per_class"] == results[1]["per_class"] and "warnings" not in results[1]

    old = train_here(argv(tmp_path / "old"))  # written by older code: still resumes, and says what it cannot do
    assert old.returncode == 0 and "Previous epoch: 2" in old.stdout
    warning = [line for line in old.stdout.splitlines() if "cannot continue the random number generators" in line]
    assert warning == [f"WARNING: resuming from {tmp_path / 'old' / 'prompt_learner' / 'model.pth.tar-2'}, which "
                       f"cannot continue the random number generators exactly (it holds no random number generator "
                       f"states (written by older code)): from epoch 3 on, sample order and augmentations may "
                       f"differ from an uninterrupted run's."]
    assert json.loads((tmp_path / "old" / "results.json").read_text())["warnings"] == [warning[0]]


def test_states_round_trip_and_survive_a_weights_only_load(tmp_path):
    """capture / restore give back the same draws from torch, Python's random and NumPy; the saved form is
    plain tensors, numbers and lists (torch.load(weights_only=True) reads it)."""
    import random

    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    torch.rand(5), random.random(), np.random.normal()  # a cached Gaussian in NumPy's state
    torch.save({rng_states.CHECKPOINT_KEY: rng_states.capture_all_ranks()}, tmp_path / "s.pt")
    first = (torch.rand(4), [random.random() for _ in range(3)], np.random.normal(size=3), np.random.rand(2))
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    saved = torch.load(tmp_path / "s.pt", weights_only=True)[rng_states.CHECKPOINT_KEY]
    assert rng_states.restore_rank(saved) == ""
    again = (torch.rand(4), [random.random() for _ in range(3)], np.random.normal(size=3), np.random.rand(2))
    assert torch.equal(first[0], again[0]) and first[1] == again[1]
    assert np.array_equal(first[2], again[2]) and np.array_equal(first[3], again[3])


def test_states_of_another_process_count_are_not_restored():
    before = torch.get_rng_state()
    states = rng_states.capture()
    why = rng_states.restore_rank([states, states])
    assert why == "it was written by a run of 2 process(es) and this run has 1, so the generator states were not restored"
    assert torch.equal(torch.get_rng_state(), before)
