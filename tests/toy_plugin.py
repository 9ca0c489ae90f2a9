"""A toy dataset and trainer that the engine tests register (VR_PLUGINS=tests.toy_plugin).

ToyColors: coloured 16x16 squares, a few classes whose labels first appear out of order, written on disk
in the CoOp split-json layout. ToyLinear: a linear classifier on 8x8 thumbnails, trained with the engine's
optimiser and warm-up-safe scheduler; it runs on both backends (builtin and real Dassl). Environment
switches make it misbehave on purpose: TOY_KILL_AT_EPOCH=N kills the process (SIGKILL, or the signal named by
TOY_KILL_SIGNAL, e.g. SIGTERM) after epoch N is checkpointed (ToyLinear, and the project's trainers: VR
trainers, CoOp); TOY_PAUSE_AT_EPOCH=N sleeps TOY_PAUSE_SECONDS (30) there instead, so a test can signal a run
whose epoch-N checkpoint it has seen before the run goes on; TOY_NAN_AT_EPOCH=N returns a NaN
loss in epoch N. ToyColors honours DATASET.SUBSAMPLE_CLASSES (base: red, green; new: blue, yellow).
"""
import os
import signal
import time

import numpy as np
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from engine import (
    DATASET_REGISTRY,
    TRAINER_REGISTRY,
    DatasetBase,
    Datum,
    TrainerX,
    build_optimizer,
    read_json,
    write_json,
)
from engine.schedulers import build_lr_scheduler  # Dassl 0.6.3's own warm-up schedulers fail on torch 2.x
from trainers.loading import SafeLoadModel

TOY_CLASSES = ["red", "green", "blue", "yellow"]
TOY_COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (220, 220, 30)}


def make_toy_root(root, per_class=(7, 5, 9, 3), n_test=4, seed=0):
    """Write ToyColors under ``root/toy_colors`` and return the dataset folder."""
    rng = np.random.RandomState(seed)
    ddir = os.path.join(root, "toy_colors")
    imdir = os.path.join(ddir, "images")
    split = {"train": [], "val": [], "test": []}
    # labels appear in the order 2, 0, 3, 1 in the train list
    order = [2, 0, 3, 1]
    for label in order:
        name = TOY_CLASSES[label]
        os.makedirs(os.path.join(imdir, name), exist_ok=True)
        n_train = per_class[label]
        for i in range(n_train + n_test + 1):
            base = np.array(TOY_COLORS[name], dtype=np.float64)
            img = np.clip(base + rng.randn(16, 16, 3) * 40, 0, 255).astype(np.uint8)
            rel = f"{name}/{i:03d}.png"
            Image.fromarray(img).save(os.path.join(imdir, rel))
            part = "train" if i < n_train else ("val" if i == n_train else "test")
            split[part].append([rel, label, name])
    write_json(split, os.path.join(ddir, "split_toy.json"))
    return ddir


@DATASET_REGISTRY.register(force=True)
class ToyColors(DatasetBase):
    dataset_dir = "toy_colors"

    def __init__(self, cfg):
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        if not os.path.isdir(self.dataset_dir):
            make_toy_root(root)
        split = read_json(os.path.join(self.dataset_dir, "split_toy.json"))

        def items(part):
            return [Datum(impath=os.path.join(self.dataset_dir, "images", rel), label=int(lab), classname=cname)
                    for rel, lab, cname in split[part]]

        train, val, test = items("train"), items("val"), items("test")
        if cfg.DATASET.NUM_SHOTS >= 1:
            train = self.generate_fewshot_dataset(train, num_shots=cfg.DATASET.NUM_SHOTS)
        from datasets.subsample import subsample_classes

        train, val, test = subsample_classes(train, val, test, subsample=cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"))
        super().__init__(train_x=train, val=val, test=test)


class ToyNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(x, 8).flatten(1))


@TRAINER_REGISTRY.register(force=True)
class ToyLinear(SafeLoadModel, TrainerX):  # Dassl-safe load_model, as the project trainers
    def build_model(self):
        self.model = ToyNet(self.num_classes).to(self.device)
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("toynet", self.model, self.optim, self.sched)

    def forward_backward(self, batch):
        image, label, _ = self.parse_batch_train(batch)
        loss = F.cross_entropy(self.model(image), label)
        if os.environ.get("TOY_NAN_AT_EPOCH") == str(self.epoch + 1):
            loss = loss * float("nan")
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item()}

    def after_epoch(self):
        super().after_epoch()
        kill_or_pause_if_asked(self.epoch)


def kill_or_pause_if_asked(epoch):
    """Kill (TOY_KILL_AT_EPOCH) or pause (TOY_PAUSE_AT_EPOCH) this process after (0-based) ``epoch`` when the
    variable names it (1-based).

    No flush first: the run's own log must survive the kill by itself."""
    if os.environ.get("TOY_KILL_AT_EPOCH") == str(epoch + 1):
        os.kill(os.getpid(), getattr(signal, os.environ.get("TOY_KILL_SIGNAL", "SIGKILL")))
    if os.environ.get("TOY_PAUSE_AT_EPOCH") == str(epoch + 1):
        time.sleep(float(os.environ.get("TOY_PAUSE_SECONDS", "30")))


def _switch_project_trainers():
    """The project's trainers get the same switch (their checkpoint is saved in after_epoch)."""
    from trainers.checkpoints import RunCheckpoints

    save_then_maybe_die = RunCheckpoints.after_epoch

    def after_epoch(self):
        save_then_maybe_die(self)
        kill_or_pause_if_asked(self.epoch)

    RunCheckpoints.after_epoch = after_epoch


if os.environ.get("TOY_KILL_AT_EPOCH") or os.environ.get("TOY_PAUSE_AT_EPOCH"):
    _switch_project_trainers()
