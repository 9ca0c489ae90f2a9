"""A run killed (kill -9) after an epoch and resumed equals the uninterrupted run bit for bit, also for the
trainers whose sample order and augmentations come from the process-wide generators (the CoOp family,
CLIPAdapter, TipAdapterF, VR trainers with DATALOADER.AUGMENT_SEED global): every checkpoint carries those
generators' states (engine/rng_states.py) and a resume restores them. A checkpoint written before (no
states) still resumes, with one warning."""
import json
import random
import re
import shutil
import sys

import numpy as np
import pytest
import torch

from engine import rng_states
from tests.conftest import kill_and_resume, train_here
from tests.toy_runs import feature_run_args, prompt_args, toy_argv
from tests.trainer_fixtures import toy_descriptions  # noqa: F401  (a fixture)

# three epochs, the kill after the second (tests/conftest.py kill_and_resume); a learning rate that moves
# the context visibly in a few steps; 3 batches per epoch, each printed
SHORT = ["OPTIM.MAX_EPOCH", 3, "OPTIM.LR", 0.5, "OPTIM.WARMUP_EPOCH", 0, "DATALOADER.TRAIN_X.BATCH_SIZE", 8,
         "TRAIN.PRINT_FREQ", 1, "USE_CUDA", False]
TIMING = re.compile(r" (time|data|eta) \S+( \(\S+\))?")
WARNING = "cannot continue the random number generators"


def epoch_lines(text):
    """The training progress lines (epoch, batch, loss, accuracy, lr) without their timings."""
    return [TIMING.sub("", line) for line in text.splitlines() if line.startswith("epoch [")]


def saved(folder, model, epoch=3):
    return torch.load(folder / model / f"model.pth.tar-{epoch}", weights_only=True)


def same(a, b):
    """Equal bit for bit: tensors, and the dicts and lists of them a state_dict may hold (VR's text table)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_run(whole, killed, resumed, model):
    """The resumed run continued after epoch 2 and ended where the uninterrupted one did: every learned
    tensor, every loss / accuracy line of the log, the test accuracy per class."""
    assert "Previous epoch: 2" in resumed.stdout and "epoch [1/3]" not in resumed.stdout
    assert WARNING not in resumed.stdout
    a, b = (saved(d, model)["state_dict"] for d in (whole, killed))
    assert set(a) == set(b)
    for key in a:
        assert same(a[key], b[key]), key
    logs = [epoch_lines((d / "log.txt").read_text()) for d in (whole, killed)]
    assert {line.split(" batch")[0] for line in logs[0]} == {"epoch [1/3]", "epoch [2/3]", "epoch [3/3]"}
    assert logs[0] == logs[1]  # the killed run's epochs 1-2, then the resumed epoch 3
    results = [json.loads((d / "results.json").read_text()) for d in (whole, killed)]
    assert results[0]["accuracy"] == results[1]["accuracy"] and results[0]["per_class"] == results[1]["per_class"]
    assert "warnings" not in results[1]


@pytest.mark.slow  # three train.py runs (one a subprocess) and a fourth resume
@pytest.mark.parametrize("method,workers", [("CoOp", 2), ("MaPLe", 0)])
def test_a_killed_and_resumed_prompt_run_equals_the_uninterrupted_one(method, workers, toy_root, tmp_path):
    """Order and augmentation (random crop, flip) from the process-wide generators: in this process (MaPLe,
    no workers), or in loader workers whose seeds are drawn from the torch generator (CoOp, 2 workers). Fails
    without the saved states (the resumed epoch 3 replays epoch 1's draws)."""
    def argv(out):
        return [sys.executable, "train.py", *prompt_args(method, toy_root, out, *SHORT),
                "DATALOADER.NUM_WORKERS", str(workers)]

    def keep_an_old_style_copy(killed):
        """The killed folder as older code would have left it: a checkpoint without generator states."""
        old = tmp_path / "old"
        shutil.copytree(killed, old)
        checkpoint = saved(old, "prompt_learner", 2)
        assert len(checkpoint[rng_states.CHECKPOINT_KEY]) == 1  # one process, one entry
        del checkpoint[rng_states.CHECKPOINT_KEY]
        torch.save(checkpoint, old / "prompt_learner" / "model.pth.tar-2")

    whole, killed, resumed = kill_and_resume(argv, tmp_path, after_kill=keep_an_old_style_copy)
    assert_same_run(whole, killed, resumed, "prompt_learner")

    old = train_here(argv(tmp_path / "old"))  # written by older code: still resumes, and says what it cannot do
    assert old.returncode == 0 and "Previous epoch: 2" in old.stdout
    warning = [line for line in old.stdout.splitlines() if WARNING in line]
    assert warning == [f"WARNING: resuming from {tmp_path / 'old' / 'prompt_learner' / 'model.pth.tar-2'}, which "
                       f"cannot continue the random number generators exactly (it holds no random number generator "
                       f"states (written by older code)): from epoch 3 on, sample order and augmentations may "
                       f"differ from an uninterrupted run's."]
    assert json.loads((tmp_path / "old" / "results.json").read_text())["warnings"] == [warning[0]]


@pytest.mark.slow  # three train.py runs (one a subprocess) per trainer
@pytest.mark.parametrize("method,model", [("TipAdapterF", "head"), ("VP", "vr_model")])
def test_other_families_on_the_process_wide_generators_resume_exactly(method, model, toy_root, toy_descriptions,
                                                                      tmp_path):
    """TipAdapterF trains on Dassl's loader (as CLIPAdapter does; its cache passes also reseed the torch generator
    before epoch 1, which a resumed run skips); VP with DATALOADER.AUGMENT_SEED global draws as Dassl does. Each
    failed before the states were saved."""
    def argv(out):
        if method == "VP":
            args = toy_argv(method, toy_root, out, toy_descriptions, "OPTIM.MAX_EPOCH", 3,
                            "DATALOADER.TRAIN_X.BATCH_SIZE", 3, "TRAIN.PRINT_FREQ", 1, "DATALOADER.AUGMENT_SEED",
                            "global")
        else:
            args = feature_run_args(method, toy_root, out, "TRAIN.PRINT_FREQ", 1)
        return [sys.executable, "train.py", *args]

    assert_same_run(*kill_and_resume(argv, tmp_path), model)


def test_states_round_trip_and_survive_a_weights_only_load(tmp_path):
    """capture / restore give back the same draws from torch, Python's random and NumPy (a cached Gaussian
    included); the saved form is plain tensors, numbers and lists (torch.load(weights_only=True) reads it)."""
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    torch.rand(5), random.random(), np.random.normal()  # NumPy now holds a cached Gaussian
    torch.save({rng_states.CHECKPOINT_KEY: rng_states.capture_all_ranks()}, tmp_path / "s.pt")
    first = (torch.rand(4), [random.random() for _ in range(3)], np.random.normal(size=3), np.random.rand(2))
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    states = torch.load(tmp_path / "s.pt", weights_only=True)[rng_states.CHECKPOINT_KEY]
    assert rng_states.restore_rank(states) == ""
    again = (torch.rand(4), [random.random() for _ in range(3)], np.random.normal(size=3), np.random.rand(2))
    assert torch.equal(first[0], again[0]) and first[1] == again[1]
    assert np.array_equal(first[2], again[2]) and np.array_equal(first[3], again[3])


def test_states_of_another_process_count_are_not_restored():
    before = torch.get_rng_state()
    states = rng_states.capture()
    torch.rand(3)
    assert rng_states.restore_rank([states, states]) == ("it was written by a run of 2 process(es) and this run has 1, "
                                                         "so the generator states were not restored")
    assert not torch.equal(torch.get_rng_state(), before)  # left as it was: not set back to the saved state


def test_cuda_states_for_other_devices_are_named_and_the_others_restored():
    """A checkpoint written with CUDA, resumed without it (or with another device count): the CPU, Python and
    NumPy generators are restored and the warning's reason names the devices."""
    states = rng_states.capture()
    states["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * (torch.cuda.device_count() + 1)
    first = torch.rand(3)
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert rng_states.restore(states) == (f"it was written with {here + 1} CUDA device(s) and this process has "
                                          f"{here}")
    assert torch.equal(torch.rand(3), first)


@pytest.mark.parametrize("mode,workers,inexact", [("global", 2, True), ("global", 0, False), ("per_sample", 2, False)])
def test_a_resume_that_cannot_be_exact_says_so(toy_root, toy_descriptions, tmp_path, mode, workers, inexact):  # noqa: F811
    """VR loaders keep their worker processes across epochs: with AUGMENT_SEED global the workers' own random
    streams are in no checkpoint, so such a resume is announced (the same warning as an old checkpoint's)."""
    from tests.trainer_fixtures import make_trainer, toy_cfg

    cfg = toy_cfg("VP", toy_root, tmp_path, toy_descriptions, epochs=1,
                  opts=["DATALOADER.AUGMENT_SEED", mode, "DATALOADER.NUM_WORKERS", workers])
    trainer = make_trainer(cfg)
    reason = trainer.inexact_resume_reason()
    assert (reason is not None) == inexact
    if inexact:
        trainer.restore_rngs({rng_states.CHECKPOINT_KEY: rng_states.capture_all_ranks()}, "ckpt", 1)
        assert trainer.load_warnings == [f"WARNING: resuming from ckpt, which {WARNING} exactly ({reason}): from "
                                         f"epoch 2 on, sample order and augmentations may differ from an "
                                         f"uninterrupted run's."]
        assert "AUGMENT_SEED per_sample resumes exactly" in reason
