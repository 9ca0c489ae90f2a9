"""Fashion-MNIST and MNIST from their IDX files, written once in the CoOp layout.

The four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each plain or ``.gz``) are looked for, in this order, in
``<ROOT>/<folder>/raw/`` (a copy you put there), torchvision's layout ``<ROOT>/<FashionMNIST|MNIST>/raw/``
and the Debian package's folder (Fashion-MNIST: ``apt-get install dataset-fashion-mnist`` ->
/usr/share/datasets/fashion-mnist). The files found (path, size, sha256) are recorded in the meta file.

Layout written under ``DATASET.ROOT`` (no engine dependency here)::

    <folder>/images/<label>_<name>/{train,test}-<index>.png    28x28 grey PNGs
    <folder>/split_<Name>.json                                  CoOp's split format
    <folder>/<folder>_meta.json                                 written last: the folder is complete

Split: the official 10,000 test images are ``test``; the official 60,000 training images are split per
class, with a fixed seed, into ``train`` (80%) and ``val`` (20%), CoOp's ``split_trainval`` proportion.
"""
import gzip
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.data_identity import sha256_file

DATA_VERSION = 1
SPLIT_SEED = 20250601
P_VAL = 0.2
IMAGE_DIR = "images"
PARTS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@dataclass(frozen=True)
class Family:
    """One MNIST-style dataset: its folder, names and where its IDX files may be."""

    name: str  # DATASET.NAME / class name
    folder: str  # under DATASET.ROOT (also the config name)
    torchvision_folder: str  # torchvision's <ROOT>/<this>/raw
    classnames: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()  # folders a system package installs the IDX files into
    system_hint: str = ""  # how to get them from a package manager

    @property
    def split_file(self):
        return f"split_{self.name}.json"

    @property
    def meta_file(self):
        return f"{self.folder}_meta.json"

    def image_folder_of(self, label: int) -> str:
        return f"{label}_{self.classnames[label].replace('/', '_').replace(' ', '_')}"


FASHION = Family("FashionMNIST", "fashion_mnist", "FashionMNIST",
                 ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"),
                 system_dirs=("/usr/share/datasets/fashion-mnist",),
                 system_hint="apt-get install -y dataset-fashion-mnist (Debian/Ubuntu: installs them into "
                             "/usr/share/datasets/fashion-mnist)")
MNIST = Family("MNIST", "mnist", "MNIST",
               ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))


def candidate_dirs(family: Family, root: str):
    """The folders searched for the IDX files, in order, under the data root ``root``."""
    return dirs_under(family, os.path.abspath(os.path.expanduser(root)))


def dirs_under(family: Family, root: str):
    """:func:`candidate_dirs` with ``root`` as given (``<ROOT>`` in the loaders' layout text)."""
    return [os.path.join(root, family.folder, "raw"), os.path.join(root, family.torchvision_folder, "raw"),
            *family.system_dirs]


def _find(directory: str, base: str) -> str | None:
    for name in (base, base + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def find_idx_files(family: Family, root: str) -> dict[str, str] | None:
    """{IDX base name: path} from the first candidate folder that holds all four, or None."""
    for directory in candidate_dirs(family, root):
        found = {base: _find(directory, base) for pair in PARTS.values() for base in pair}
        if all(found.values()):
            return found
    return None


def missing_message(family: Family, root: str) -> str:
    """What to install or copy where, when no folder holds the four IDX files."""
    names = ", ".join(b for pair in PARTS.values() for b in pair)
    places = "\n".join(f"  {d}" for d in candidate_dirs(family, root))
    how = [f"Put the four IDX files ({names}; plain or .gz) into {candidate_dirs(family, root)[0]}",
           f"or keep torchvision's download layout ({candidate_dirs(family, root)[1]})"]
    if family.system_hint:
        how.append(f"or install them with: {family.system_hint}")
    return (f"{family.name}: the IDX files were not found in any of:\n{places}\n" + ",\n".join(how)
            + f".\nThen run: python -m datasets.download {family.folder} --root {root}")


def read_idx(path: str) -> np.ndarray:
    """An IDX array (uint8 data), checked against its header."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number).")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} holds {body.size} values; its header says {dims} (truncated or corrupt file).")
    return body.reshape(dims)


def load_parts(files: dict[str, str]):
    """{"train"|"test": (images (N, 28, 28), labels (N,))}, checked for matching counts and labels 0..9."""
    out = {}
    for part, (img_base, lab_base) in PARTS.items():
        images, labels = read_idx(files[img_base]), read_idx(files[lab_base])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{files[img_base]} and {files[lab_base]} do not match: shapes {images.shape} "
                             f"and {labels.shape}.")
        if labels.max() > 9:
            raise ValueError(f"{files[lab_base]} has labels above 9.")
        out[part] = (images, labels.astype(np.int64))
    return out


def split_train_val(labels: np.ndarray):
    """Per class, a seeded 20% of the official training images for val; sorted index lists."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, val = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * P_VAL))
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)


def build(family: Family, root: str, verbose: bool = True) -> str:
    """Write the images and split of ``family`` under ``root`` once; return its folder. Concurrent builds:
    each writes a private temporary folder and renames it into place; the first rename wins."""
    target = os.path.join(os.path.abspath(os.path.expanduser(root)), family.folder)
    if is_complete(family, target):
        return target
    files = find_idx_files(family, root)
    if files is None:
        from .errors import DatasetNotFoundError

        raise DatasetNotFoundError(missing_message(family, root))
    parts = load_parts(files)
    if verbose:
        print(f"{family.name}: writing {sum(len(v[1]) for v in parts.values()):,} images and {family.split_file} "
              f"to {target} from {os.path.dirname(next(iter(files.values())))} (first use only)", flush=True)
    os.makedirs(target, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=target, prefix=".build-")
    try:
        image_root = os.path.join(tmp, IMAGE_DIR)
        for label in range(10):
            os.makedirs(os.path.join(image_root, family.image_folder_of(label)))
        rows = {}
        for part, (images, labels) in parts.items():
            rows[part] = []
            for i, (img, label) in enumerate(zip(images, labels, strict=False)):
                rel = f"{family.image_folder_of(int(label))}/{part}-{i:05d}.png"
                Image.fromarray(img, mode="L").save(os.path.join(image_root, rel), compress_level=1)
                rows[part].append([rel, int(label), family.classnames[int(label)]])
        train_idx, val_idx = split_train_val(parts["train"][1])
        split = {"train": [rows["train"][i] for i in train_idx], "val": [rows["train"][i] for i in val_idx],
                 "test": rows["test"]}
        with open(os.path.join(tmp, family.split_file), "w") as f:
            json.dump(split, f)
        meta = {"version": DATA_VERSION, "dataset": family.name, "split_seed": SPLIT_SEED, "p_val": P_VAL,
                "counts": {k: len(v) for k, v in split.items()}, "classnames": list(family.classnames),
                "idx_files": {base: {"path": path, "bytes": os.path.getsize(path), "sha256": sha256_file(path)}
                              for base, path in files.items()}}
        with open(os.path.join(tmp, family.meta_file), "w") as f:
            json.dump(meta, f, indent=1)
        for name in os.listdir(tmp):  # the meta file last: its presence means the folder is complete
            if name != family.meta_file:
                _move(os.path.join(tmp, name), os.path.join(target, name))
        _move(os.path.join(tmp, family.meta_file), os.path.join(target, family.meta_file))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(family, target):
        raise RuntimeError(f"{target}: the {family.name} build did not complete.")
    return target


def _move(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        if not os.path.exists(dst):  # another process put it there first: keep theirs
            raise


def is_complete(family: Family, folder: str) -> bool:
    """True if ``folder`` holds a finished build of the current version; a stale one is an error."""
    path = os.path.join(folder, family.meta_file)
    if not os.path.isfile(path):
        return False
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        meta = {}
    if meta.get("version") != DATA_VERSION or meta.get("dataset") != family.name:
        raise RuntimeError(f"{folder} is not a complete {family.name} folder of version {DATA_VERSION}. Delete "
                           f"its {IMAGE_DIR}/, {family.split_file} and {family.meta_file} and run again.")
    return True


def test_subset(test, per_class: int):
    """The first ``per_class`` test items of each class, in split order (0: all)."""
    if per_class <= 0:
        return test
    kept, seen = [], {}
    for item in test:
        if seen.get(item.label, 0) < per_class:
            kept.append(item)
            seen[item.label] = seen.get(item.label, 0) + 1
    return kept
