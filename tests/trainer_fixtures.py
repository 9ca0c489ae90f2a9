"""Helpers for the VR trainer tests: toy description files, configs, in-process trainers.

Data: the ToyColors dataset of tests/toy_plugin.py (4 classes, coloured squares). Backbone: test-tiny.
Descriptions: generated into a temporary folder under the key "toy" (DATASET.DESCRIPTIONS_KEY).
Device: the CPU; ``VR_TEST_DEVICE=cuda`` runs the same trainer tests on a GPU (a CUDA check, not for CI).
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from engine import DatasetWrapper, build_trainer, set_random_seed
from plugins import project_cfg
from tests.toy_plugin import TOY_CLASSES  # noqa: F401  (also registers ToyColors)

KEY = "toy"
FILES = {
    "attributes/toy_des.json": "looks {adj} and has a {noun} that is easy to see",
    "attributes/toy_dist.json": "differs from the others by its {adj} {noun}",
    "causes/toy_cse_1.json": "shape: the outline is {adj} like a {noun}",
    "causes/toy_cse_2.json": "colour: the surface is {adj} like a {noun}",
    "causes/toy_cse_3.json": "texture: the grain is {adj} like a {noun}",
}
ADJ = ["bright", "dull", "round", "sharp", "soft", "rough"]
NOUN = ["ball", "leaf", "stone", "cloud", "brick", "shell"]


def write_toy_descriptions(folder, classes=TOY_CLASSES, n=6, skip_class=None):
    """Write every toy description file (n sentences per class, plus one too short to be used)."""
    for rel, pattern in FILES.items():
        data = {}
        for c in classes:
            if c == skip_class:
                continue
            data[c] = [f"A {c} thing " + pattern.format(adj=ADJ[i % 6], noun=NOUN[(i + len(c)) % 6]) + "."
                       for i in range(n)] + ["too short"]
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f)
    return str(folder)


@pytest.fixture(scope="session")
def toy_descriptions(tmp_path_factory):
    return write_toy_descriptions(tmp_path_factory.mktemp("toy_descriptions"))


# small method settings so that a run takes seconds on a CPU
METHOD_OPTS = {
    "ATTRVR": {"M": 4, "K": 2},
    "DVP_CSE": {"M": 2, "PRM_TOPK": 2},
    "DVP_CLS": {"M": 4, "PRM_TOPK": 2, "V": 2, "KMEANS_N_INIT": 2},
}
TEST_DEVICE = os.environ.get("VR_TEST_DEVICE", "cpu")
if TEST_DEVICE not in ("cpu", "cuda"):
    raise ValueError(f"VR_TEST_DEVICE={TEST_DEVICE!r}: use cpu (default) or cuda")
if TEST_DEVICE == "cuda" and not torch.cuda.is_available():
    raise RuntimeError("VR_TEST_DEVICE=cuda but torch.cuda.is_available() is False: no silent CPU run")
def registered_trainers(base):
    """Names of the registered trainers that subclass ``base``, the project's and those of the test plugin
    modules (tests/test_*_plugin.py, imported here), so that a method defined in a test file is covered by
    the registry-parametrised tests without editing them."""
    import glob
    import importlib

    from engine import TRAINER_REGISTRY
    from plugins import load_plugins

    load_plugins()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "test_*_plugin.py"))):
        importlib.import_module(f"tests.{os.path.basename(path)[:-3]}")
    return [n for n in TRAINER_REGISTRY.registered_names() if issubclass(TRAINER_REGISTRY.get(n), base)]


def node_of(trainer):
    """The config node of a registered trainer (its class's NODE: TRAINER.<NODE>)."""
    from engine import TRAINER_REGISTRY

    return TRAINER_REGISTRY.get(trainer).NODE


def toy_cfg(trainer, root, output_dir, descriptions_dir, epochs=3, seed=1, opts=()):
    """A frozen config for ``trainer`` on ToyColors (2 shots, batch 3) with test-tiny, on ``TEST_DEVICE``."""
    cfg = project_cfg()
    cfg.DATASET.NAME = "ToyColors"
    cfg.DATASET.ROOT = root
    cfg.DATASET.NUM_SHOTS = 2
    cfg.DATASET.DESCRIPTIONS_DIR = descriptions_dir
    cfg.DATASET.DESCRIPTIONS_KEY = KEY
    cfg.MODEL.BACKBONE.NAME = "test-tiny"
    cfg.USE_CUDA = TEST_DEVICE == "cuda"
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 3  # 8 training images: batches of 3, 3 and 2 (no drop_last)
    cfg.DATALOADER.TEST.BATCH_SIZE = 16
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.LR = 10.0
    cfg.OPTIM.WEIGHT_DECAY = 0.0
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.MAX_EPOCH = epochs
    cfg.TRAIN.PRINT_FREQ = 100
    cfg.TRAINER.NAME = trainer
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.SEED = seed
    node = cfg.TRAINER[node_of(trainer)]
    for k, v in METHOD_OPTS.get(node_of(trainer), {}).items():
        node[k] = v
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    return cfg


def make_trainer(cfg):
    set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    assert trainer.device.type == ("cuda" if cfg.USE_CUDA else "cpu")  # the device the test asked for
    return trainer


def train_set_loss(trainer):
    """Mean cross-entropy of the model on the training images (test transform, eval mode, fp32)."""
    from trainers.pipeline import vr_transforms

    tfm = vr_transforms(trainer.model.prompts.loader_size)[1]
    loader = DataLoader(DatasetWrapper(trainer.cfg, trainer.dm.dataset.train_x, transform=tfm), batch_size=64)
    trainer.model.eval()
    with torch.no_grad():
        batch = next(iter(loader))
        logits = trainer.model(batch["img"].to(trainer.device))
        return F.cross_entropy(logits, batch["label"].to(trainer.device)).item()


def eval_logits(trainer):
    """(class logits, labels) of the whole test set, in loader order, on the CPU."""
    trainer.model.eval()
    with torch.no_grad():
        batches = list(trainer.test_loader)
        logits = torch.cat([trainer.model(b["img"].to(trainer.device)).cpu() for b in batches])
    return logits, torch.cat([b["label"] for b in batches])
