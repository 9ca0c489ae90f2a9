"""Helpers for the dataset tests: a config naming a dataset, its loaded dataset, an ImageFolder of generated
images and MNIST-style IDX files (shared here, not imported from another test module)."""
import gzip
import os
import struct

import numpy as np


def make_cfg(root, name, **dataset):
    from plugins import project_cfg

    cfg = project_cfg()
    cfg.SEED = 1
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    for key, value in dataset.items():
        cfg.DATASET[key] = value
    return cfg


def load(root, name, **dataset):
    import datasets  # noqa: F401
    from engine import build_dataset

    return build_dataset(make_cfg(root, name, **dataset))


def relpaths(items, root):
    return [(os.path.relpath(d.impath, root), d.label, d.classname) for d in items]


def make_folder(root, classes, per_class=5, ext=".png"):
    from tests.dataset_miniatures import write_image

    for cname in classes:
        for i in range(per_class):
            write_image(os.path.join(root, cname, f"{i}{ext}"))
    return str(root)


def write_idx(folder, n_train=50, n_test=30, gz=True):
    """Four IDX files with n images per part, labels cycling 0..9, pixel value = index % 256."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = (np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8))
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
