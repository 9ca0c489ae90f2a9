"""Every registered trainer (the project's and the test plugins', found in the registry) through train.py on
ToyColors with test-tiny: train a few steps, test, save; --eval-only --model-dir into a fresh trainer built
with another seed tests again BIT-IDENTICALLY; no NaN; the learned parameters are fp32 at every precision.

What a trainer needs comes from what its class declares, never from its name here: TRAINS (False: evaluated
only), STATS_EPOCHS (epochs that update nothing), BUDGET_KEY (the key of its training length; default
OPTIM.MAX_EPOCH), PRECISION_KEY / PRECISION_CHOICES (TRAINER.<NODE>.<key>; none: it has no precision
choice), and its config file configs/trainers/<name>/demo.yaml (else vit_b16.yaml, else the defaults).
On the CPU the precisions run are those without CUDA (fp32, bf16 where offered); under VR_TEST_DEVICE=cuda
fp16, bf16 (where offered) and fp32. Fast (`-m "not slow"`): fp32 on the CPU for one trainer per family (the first
registered subclass of each tuple of direct base classes); slow: every other trainer and precision.
"""
import glob
import json
import os

import pytest
import torch

import train
from engine import TRAINER_REGISTRY, TrainerX
from tests.conftest import REPO
from tests.trainer_fixtures import KEY, TEST_DEVICE, registered_trainers, toy_descriptions  # noqa: F401
from trainers.clip_plumbing import CUDA_ONLY

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRAINERS = registered_trainers(TrainerX)
STEPS = 2  # the training length in the trainer's own budget unit (epochs of 2 batches; CLIP-LoRA: iterations/shot)


def config_file(name):
    """The trainer's CPU-sized demo config, else its ViT-B/16 config, else none (the registered defaults)."""
    for stem in ("demo", "vit_b16"):
        path = os.path.join(REPO, "configs", "trainers", name, f"{stem}.yaml")
        if os.path.isfile(path):
            return path
    return None


def precisions(cls):
    """The precisions this trainer is tested at on TEST_DEVICE (None: it has no precision key)."""
    if not getattr(cls, "PRECISION_KEY", ""):
        return [None]
    wanted = ("fp16", "bf16", "fp32") if TEST_DEVICE == "cuda" else ("bf16", "fp32")
    return [p for p in cls.PRECISION_CHOICES if p in wanted and (TEST_DEVICE == "cuda" or p not in CUDA_ONLY)]


def family_firsts(names):
    """One trainer per family (its direct base classes), the first registered: the fast loop's sample."""
    firsts = {}
    for name in names:
        firsts.setdefault(TRAINER_REGISTRY.get(name).__bases__, name)
    return set(firsts.values())


FAST = family_firsts(TRAINERS) if TEST_DEVICE == "cpu" else set()
CASES = [pytest.param(name, prec, id=f"{name}-{prec or 'default'}",
                      marks=() if name in FAST and prec in (None, "fp32") else pytest.mark.slow)
         for name in TRAINERS for prec in precisions(TRAINER_REGISTRY.get(name))]


def argv(cls, root, out, descriptions, seed, precision, extra=()):
    name, budget = cls.__name__, getattr(cls, "BUDGET_KEY", "OPTIM.MAX_EPOCH")
    steps = STEPS + (getattr(cls, "STATS_EPOCHS", 0) if budget == "OPTIM.MAX_EPOCH" else 0)
    args = ["--root", root, "--output-dir", str(out), "--trainer", name, "--seed", str(seed), *extra]
    if config_file(name):
        args += ["--config-file", config_file(name)]
    args += ["DATASET.NAME", "ToyColors", "DATASET.NUM_SHOTS", "2", "DATASET.DESCRIPTIONS_DIR", descriptions,
             "DATASET.DESCRIPTIONS_KEY", KEY, "MODEL.BACKBONE.NAME", "test-tiny", "USE_CUDA",
             str(TEST_DEVICE == "cuda"), "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
             "DATALOADER.TEST.BATCH_SIZE", "16", "TRAIN.PRINT_FREQ", "100", budget, str(steps)]
    if precision is not None:
        args += [f"TRAINER.{cls.NODE}.{cls.PRECISION_KEY}", precision]
    return args


@pytest.fixture
def tested(monkeypatch):
    """Every test() of a trainer in this test: (trainer, the logits of the whole test set, accuracy)."""
    calls = []

    def record(cls):
        original = cls.test

        def test(self, *args, **kwargs):
            outputs, inference = [], self.model_inference
            self.model_inference = lambda x: outputs.append(inference(x)) or outputs[-1]
            try:
                accuracy = original(self, *args, **kwargs)
            finally:
                del self.model_inference
            calls.append((self, torch.cat([o.detach().cpu() for o in outputs]), accuracy))
            return accuracy

        monkeypatch.setattr(cls, "test", test)
        return calls

    return record


def last_checkpoint(out):
    """(epoch, floating tensors) of the run's last checkpoint: what was learned, as train.py saved it."""
    files = sorted(glob.glob(str(out / "*" / "model.pth.tar-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    assert files, f"no checkpoint under {out}: {os.listdir(out)}"
    tensors = {}

    def collect(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                collect(f"{prefix}{k}.", v)
        elif torch.is_tensor(value) and torch.is_floating_point(value):
            tensors[prefix[:-1]] = value

    collect("", torch.load(files[-1], weights_only=True)["state_dict"])
    return int(files[-1].rsplit("-", 1)[1]), tensors


@pytest.mark.parametrize("name,precision", CASES)
def test_trains_saves_and_reloads_bit_identically(name, precision, toy_root, toy_descriptions, tmp_path, tested):
    cls = TRAINER_REGISTRY.get(name)
    calls = tested(cls)
    out, ev = tmp_path / "run", tmp_path / "eval"
    trains = getattr(cls, "TRAINS", True)
    first = argv(cls, toy_root, out, toy_descriptions, 1, precision, extra=() if trains else ["--eval-only"])
    assert train.main(first) == 0
    trainer, logits, accuracy = calls[-1]
    assert trainer.device.type == TEST_DEVICE  # the device the test asked for (no silent CPU run)
    assert torch.isfinite(logits).all(), f"{name}: non-finite logits"
    assert logits.shape == (16, 4)  # ToyColors' 16 test images, 4 classes
    assert json.loads((out / "results.json").read_text())["accuracy"] == accuracy

    if trains:  # master weights stay fp32 (autocast computes in fp16 / bf16), and the checkpoint keeps them so;
        # searched scalars (Tip-Adapter's alpha, beta) are 0-dim float64
        learned = [p for p in trainer.model.parameters() if p.requires_grad]
        assert {str(p.dtype) for p in learned} <= {"torch.float32"}, name
        epoch, saved = last_checkpoint(out)
        assert saved and {str(v.dtype) for v in saved.values() if v.dim()} == {"torch.float32"}, name
        assert {str(v.dtype) for v in saved.values() if not v.dim()} <= {"torch.float32", "torch.float64"}, name
        assert all(torch.isfinite(v).all() for v in saved.values()), f"{name}: non-finite learned values"

    # a fresh trainer (another seed: what it did not load differs) evaluates the run's checkpoint
    load = ["--model-dir", str(out), "--load-epoch", str(epoch)] if trains else []
    reload = argv(cls, toy_root, ev, toy_descriptions, 2, precision, extra=["--eval-only", *load])
    assert train.main(reload) == 0
    fresh, again, accuracy_again = calls[-1]
    assert fresh is not trainer
    assert again.dtype == logits.dtype and torch.equal(again, logits), \
        f"{name}: reloaded logits differ by {(again.float() - logits.float()).abs().max().item():.3g}"
    assert accuracy_again == accuracy
    assert json.loads((ev / "results.json").read_text())["accuracy"] == accuracy
