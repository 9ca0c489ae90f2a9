"""The built-in Digits data: scikit-learn's 1,797 handwritten digits, written in the CoOp layout.

No download: the 8x8 images ship with scikit-learn. This module has no engine dependency, so the
``digits-tiny`` backbone can pre-train on exactly the images the dataset will not test on.

Layout under ``DATASET.ROOT`` (one self-contained CoOp dataset folder per domain shift, so the
few-shot caches, which hold absolute image paths, are never shared between shifts)::

    digits/<shift>/images/<classname>/<sklearn index>.png   32x32 RGB
    digits/<shift>/split_zhou_Digits.json                     identical for every shift
    digits/<shift>/digits_meta.json                           written last: the folder is complete
    digits/<shift>/split_fewshot/                             created later by the loader

The split is fixed (stratified, seeded): ``test`` (397 images) is held out from everything,
including the pre-training of ``digits-tiny``; ``train`` and ``val`` are the rest.
"""
import json
import os
import shutil
import tempfile
from functools import lru_cache

import numpy as np
from PIL import Image

CLASSNAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLIT_FILE = "split_zhou_Digits.json"
META_FILE = "digits_meta.json"
IMAGE_DIR = "images"
DATA_VERSION = 1  # bump when rendering or the split changes: old folders are then reported as stale
SPLIT_SEED = 20250601
N_TEST = 397
N_VAL = 140
IMAGE_SIZE = 32

# Shifts are colour maps (paper colour, ink colour) plus optional pixel noise, applied when writing.
# They keep labels and the split; each changes what the frozen digits-tiny sees.
_SHIFTS = {
    "none": dict(paper=(255, 255, 255), ink=(0, 0, 0), noise=0.0,
                 doc="black ink on white paper, as digits-tiny was pre-trained"),
    "low_contrast": dict(paper=(160, 160, 160), ink=(100, 100, 100), noise=0.0,
                         doc="dark grey ink on mid-grey paper (contrast 60/255)"),
    "inverted": dict(paper=(0, 0, 0), ink=(255, 255, 255), noise=0.0,
                     doc="white ink on black paper"),
    "tinted": dict(paper=(250, 190, 90), ink=(40, 70, 170), noise=0.0,
                   doc="blue ink on amber paper"),
    "noisy": dict(paper=(255, 255, 255), ink=(0, 0, 0), noise=0.25,
                  doc="black on white with Gaussian pixel noise (sigma 0.25 of the range, fixed per image)"),
}
SHIFTS = tuple(_SHIFTS)


def shift_doc(shift: str) -> str:
    """One line saying what ``shift`` does to the images."""
    return _SHIFTS[check_shift(shift)]["doc"]


def check_shift(shift: str) -> str:
    """Return ``shift`` if it names a known shift, else raise one clear error listing them."""
    if shift not in _SHIFTS:
        raise ValueError(
            f'Unknown digits shift "{shift}" (DATASET.DIGITS_SHIFT). Valid shifts: '
            f'{", ".join(SHIFTS)}. Set it with e.g. DATASET.DIGITS_SHIFT low_contrast '
            f"or use configs/datasets/digits_<shift>.yaml.")
    return shift


@lru_cache(maxsize=1)
def load_arrays():
    """(images, labels): uint8 ink levels 0..16 of shape (1797, 8, 8), int64 labels 0..9 (read-only)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.rint(data.images).astype(np.uint8)
    labels = data.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@lru_cache(maxsize=1)
def split_indices():
    """{"train"|"val"|"test": sorted sklearn indices}: stratified, fixed seed, the same everywhere."""
    from sklearn.model_selection import train_test_split

    _, labels = load_arrays()
    every = np.arange(len(labels))
    rest, test = train_test_split(every, test_size=N_TEST, stratify=labels, random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=N_VAL, stratify=labels[rest], random_state=SPLIT_SEED)
    return {name: tuple(int(i) for i in sorted(part)) for name, part in
            (("train", train), ("val", val), ("test", test))}


def pretrain_indices():
    """The images digits-tiny may learn from: everything except the held-out test part."""
    parts = split_indices()
    return tuple(sorted(parts["train"] + parts["val"]))


def ink_levels(index: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """The digit at ``size`` x ``size`` as float ink levels in [0, 1] (bilinear upscaling of 8x8)."""
    images, _ = load_arrays()
    small = Image.fromarray(images[index].astype(np.float32) / 16.0, mode="F")
    big = np.asarray(small.resize((size, size), Image.BILINEAR), dtype=np.float32)
    return np.clip(big, 0.0, 1.0)


def render(index: int, shift: str = "none", size: int = IMAGE_SIZE) -> np.ndarray:
    """The digit as a (size, size, 3) uint8 RGB array under ``shift``; deterministic per index."""
    spec = _SHIFTS[check_shift(shift)]
    ink = ink_levels(index, size)[..., None]
    paper = np.asarray(spec["paper"], dtype=np.float32) / 255.0
    pen = np.asarray(spec["ink"], dtype=np.float32) / 255.0
    rgb = paper * (1.0 - ink) + pen * ink
    if spec["noise"]:
        rng = np.random.default_rng([SPLIT_SEED, index])
        rgb = rgb + rng.normal(0.0, spec["noise"], size=rgb.shape[:2] + (1,)).astype(np.float32)
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def relpath(index: int) -> str:
    _, labels = load_arrays()
    return f"{CLASSNAMES[labels[index]]}/{index:04d}.png"


def split_json():
    """The split in Dassl/CoOp format: {"train"|"val"|"test": [[relpath, label, classname], ...]}."""
    _, labels = load_arrays()
    return {name: [[relpath(i), int(labels[i]), CLASSNAMES[labels[i]]] for i in part]
            for name, part in split_indices().items()}


def shift_dir(root: str, shift: str) -> str:
    """The dataset folder of one shift: ``<root>/digits/<shift>``."""
    return os.path.join(os.path.abspath(os.path.expanduser(root)), "digits", check_shift(shift))


def _check_complete(folder: str, shift: str) -> bool:
    """True if ``folder`` holds a finished build of the current version; an unusable one is an error."""
    if not os.path.isdir(folder):
        return False
    meta_path = os.path.join(folder, META_FILE)
    meta = None
    if os.path.isfile(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = None
    if not meta or meta.get("version") != DATA_VERSION or meta.get("shift") != shift:
        found = f"version {meta.get('version')}" if meta else f"no readable {META_FILE}"
        raise RuntimeError(
            f"{folder} is not a complete Digits folder of version {DATA_VERSION} ({found}). "
            f"Delete it (rm -r {folder}) and run again: it is rebuilt from scikit-learn in seconds.")
    return True


def build_digits(root: str, shift: str = "none", verbose: bool = True) -> str:
    """Write the Digits images and split of ``shift`` under ``root`` once; return the shift folder.

    Safe when several processes do it at once: each writes a private temporary folder and renames
    it into place; the first rename wins, the others delete their copy and use the winner's.
    """
    target = shift_dir(root, shift)
    if _check_complete(target, shift):
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    split = split_json()
    total = sum(len(v) for v in split.values())
    if verbose:
        print(f'Digits: writing {total} images (shift "{shift}") and {SPLIT_FILE} to {target} '
              f"(scikit-learn's handwritten digits, first use only)", flush=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{shift}.tmp-")
    try:
        image_root = os.path.join(tmp, IMAGE_DIR)
        for name in CLASSNAMES:
            os.makedirs(os.path.join(image_root, name))
        for part in split_indices().values():
            for i in part:
                Image.fromarray(render(i, shift), mode="RGB").save(os.path.join(image_root, relpath(i)))
        with open(os.path.join(tmp, SPLIT_FILE), "w") as f:
            json.dump(split, f, indent=1)
        meta = {"version": DATA_VERSION, "shift": shift, "source": "sklearn.datasets.load_digits",
                "image_size": IMAGE_SIZE, "counts": {k: len(v) for k, v in split.items()},
                "classnames": list(CLASSNAMES)}
        with open(os.path.join(tmp, META_FILE), "w") as f:
            json.dump(meta, f, indent=1)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset is meant to be shared
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
            if verbose:
                print(f"Digits: {target} was written by another process; using it", flush=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _check_complete(target, shift)
    return target
