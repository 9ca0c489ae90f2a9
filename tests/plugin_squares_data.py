"""The images of the PluginSquares dataset (tests/test_datasets_plugin.py) and a tiny AR trainer yaml for it,
shared by the plugin tests (here, not imported from another test module)."""
from pathlib import Path

import numpy as np
from PIL import Image


def make_squares(root, per_class=10):
    rng = np.random.RandomState(0)
    for name, rgb in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        folder = Path(root) / "plugin_squares" / "images" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.randn(16, 16, 3) * 30, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:02d}.png")


TINY_AR = """\
DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 4
  TEST:
    BATCH_SIZE: 16
  NUM_WORKERS: 0
OPTIM:
  NAME: "sgd"
  LR: 1.0
  MAX_EPOCH: 1
  LR_SCHEDULER: "cosine"
MODEL:
  BACKBONE:
    NAME: "test-tiny"
TRAINER:
  AR:
    TEMPLATES: "coop"
"""
