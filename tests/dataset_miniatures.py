"""Miniature on-disk copies of the CoOp-style dataset layouts (the 12 datasets and the 4 ImageNet
variants), for tests.

``build(name, root, split_file=True)`` writes dataset ``name`` (config name: caltech101, dtd, ...)
under data root ``root``: a few classes whose names are taken from the published description files
(so class-name checks are real), a few tiny generated images per class, every annotation file the
loader's fallback split needs, and (``split_file=True``) a split file. It returns a :class:`Miniature`
with the class names the loader must report (in label order) and the expected split sizes.
Importable by any test: ``from tests.dataset_miniatures import build, DESCRIPTIONS_DIR``.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from tests.conftest import DESCRIPTIONS as PUBLISHED_DESCRIPTIONS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTIONS_DIR = PUBLISHED_DESCRIPTIONS  # tests/conftest.py: ../shared/descriptions or $VR_TEST_DESCRIPTIONS

NAMES = ("caltech101", "dtd", "eurosat", "fgvc_aircraft", "food101", "oxford_flowers", "oxford_pets",
         "stanford_cars", "sun397", "ucf101", "resisc45", "imagenet")
# test-only ImageNet variants (built by build() too; not in NAMES, which lists datasets with train splits)
IMAGENET_VARIANTS = {"imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNetSketch",
                     "imagenet_a": "ImageNetA", "imagenet_r": "ImageNetR"}
CLASS_NAMES = {**IMAGENET_VARIANTS, "caltech101": "Caltech101", "dtd": "DescribableTextures", "eurosat": "EuroSAT",
               "fgvc_aircraft": "FGVCAircraft", "food101": "Food101", "oxford_flowers": "OxfordFlowers",
               "oxford_pets": "OxfordPets", "stanford_cars": "StanfordCars", "sun397": "SUN397",
               "ucf101": "UCF101", "resisc45": "Resisc45", "imagenet": "ImageNet"}
DESCRIPTION_KEYS = {"caltech101": "caltech101", "dtd": "dtd", "eurosat": "eurosat", "fgvc_aircraft": "fgvc",
                    "food101": "food101", "oxford_flowers": "oxford_flowers", "oxford_pets": "oxford_pets",
                    "stanford_cars": "stanford_cars", "sun397": "sun397", "ucf101": "ucf101",
                    "resisc45": "resisc45", "imagenet": "I", **{name: "I" for name in IMAGENET_VARIANTS}}
# splits written by the miniature's split file, per class: 2 train, 1 val, 2 test (5 images);
# CoOp's 50/20/30 fallback gives the same on 5 images (round(2.5) == 2, round(1.0) == 1)
PER_CLASS = 5
TRAINVAL, TEST = 5, 2  # images per class for datasets whose fallback splits trainval 80/20


@dataclass
class Miniature:
    name: str
    root: str
    dataset_dir: str
    classnames: list  # class names in label order, as the loader must report them
    sizes: dict  # {"train": n, "val": n, "test": n} the loader must return with NUM_SHOTS=-1
    split_path: str = ""  # the split file the loader reads or creates ("" if the dataset has none)
    images: list = field(default_factory=list)  # every image written


def description_keys(key):
    """The class names (keys) of the published ``<key>_des.json``, in file order."""
    path = os.path.join(DESCRIPTIONS_DIR, "attributes", f"{key}_des.json")
    if not os.path.isfile(path):  # a checkout without the published files beside it: skip, do not fail
        import pytest

        pytest.skip(f"published description file {path} not present (the tests read ../shared/descriptions)")
    with open(path) as f:
        return list(json.load(f))


def write_image(path, size=8):
    """A tiny deterministic image (JPEG or PNG by extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    seed = int(hashlib.md5(path.encode()).hexdigest()[:8], 16)
    pixels = np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8)
    fmt = "PNG" if path.lower().endswith(".png") else "JPEG"
    Image.fromarray(pixels).save(path, fmt)
    return path


def _write_text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def _write_split(path, image_dir, rows_by_split):
    split = {k: [[os.path.relpath(p, image_dir), y, c] for p, y, c in rows] for k, rows in rows_by_split.items()}
    with open(path, "w") as f:
        json.dump(split, f, indent=4)


def _by_position(groups, n_train=2, n_val=1):
    """{label: (classname, [paths])} -> split rows: first n_train train, next n_val val, rest test."""
    out = {"train": [], "val": [], "test": []}
    for label, (cname, paths) in groups.items():
        for i, p in enumerate(paths):
            part = "train" if i < n_train else "val" if i < n_train + n_val else "test"
            out[part].append((p, label, cname))
    return out


def _folder_dataset(root, folder, image_folder, split_name, raw_folders, names, split_file, ext=".jpg",
                    extra_folders=()):
    """A folder-per-class dataset (Caltech101, DTD, EuroSAT, Food101, RESISC45)."""
    dataset_dir = os.path.join(root, folder)
    image_dir = os.path.join(dataset_dir, image_folder)
    images, groups = [], {}
    for raw in extra_folders:  # folders the loader must ignore
        images += [write_image(os.path.join(image_dir, raw, f"{raw}_{i:04d}{ext}")) for i in range(2)]
    order = sorted(raw_folders)
    for label, raw in enumerate(order):
        paths = [write_image(os.path.join(image_dir, raw, f"{raw}_{i:04d}{ext}")) for i in range(PER_CLASS)]
        images += paths
        groups[label] = (names[raw_folders.index(raw)], paths)
    split_path = os.path.join(dataset_dir, split_name)
    if split_file:
        _write_split(split_path, image_dir, _by_position(groups))
    n = len(order)
    return dataset_dir, [groups[y][0] for y in range(n)], {"train": 2 * n, "val": n, "test": 2 * n}, split_path, images


def _caltech101(root, split_file):
    keys = description_keys("caltech101")
    renamed = {"face": "Faces", "leopard": "Leopards", "motorbike": "Motorbikes", "airplane": "airplanes"}
    names = [keys[0], keys[1], keys[2], keys[3], keys[4]]  # face, leopard, motorbike, accordion, airplane
    raw = [renamed.get(n, n) for n in names]
    return _folder_dataset(root, "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json", raw, names,
                           split_file, extra_folders=("BACKGROUND_Google", "Faces_easy"))


def _simple_folders(folder, image_folder, split_name, key, n=3, ext=".jpg"):
    def builder(root, split_file):
        names = description_keys(key)[:n]
        return _folder_dataset(root, folder, image_folder, split_name, list(names), names, split_file, ext=ext)
    return builder


def _eurosat(root, split_file):
    keys = description_keys("eurosat")
    raw_of = {"Annual Crop Land": "AnnualCrop", "Forest": "Forest",
              "Herbaceous Vegetation Land": "HerbaceousVegetation",
              "Highway or Road": "Highway"}
    names = keys[:4]
    return _folder_dataset(root, "eurosat", "2750", "split_zhou_EuroSAT.json", [raw_of[n] for n in names], names,
                           split_file)


def _fgvc_aircraft(root, split_file):
    keys = description_keys("fgvc")
    names = [keys[0], "BAE 146-200", "F/A-18" if "F/A-18" in keys else keys[2]]
    dataset_dir = os.path.join(root, "fgvc_aircraft")
    _write_text(os.path.join(dataset_dir, "variants.txt"), names)
    lines = {"train": [], "val": [], "test": []}
    images, counter = [], 1000000
    for cname in names:
        for i in range(PER_CLASS):
            counter += 1
            images.append(write_image(os.path.join(dataset_dir, "images", f"{counter}.jpg")))
            part = "train" if i < 2 else "val" if i < 3 else "test"
            lines[part].append(f"{counter} {cname}")
    for part, rows in lines.items():
        _write_text(os.path.join(dataset_dir, f"images_variant_{part}.txt"), rows)
    n = len(names)
    return dataset_dir, names, {"train": 2 * n, "val": n, "test": 2 * n}, "", images


def _oxford_flowers(root, split_file):
    from scipy.io import savemat

    names = description_keys("oxford_flowers")[:3]
    dataset_dir = os.path.join(root, "oxford_flowers")
    # labels interleaved, so that "order of first appearance" differs from label order
    labels = [2, 1, 3] * PER_CLASS
    groups = {y - 1: (names[y - 1], []) for y in (1, 2, 3)}
    images = []
    for i, y in enumerate(labels):
        path = write_image(os.path.join(dataset_dir, "jpg", f"image_{i + 1:05d}.jpg"))
        groups[y - 1][1].append(path)
        images.append(path)
    savemat(os.path.join(dataset_dir, "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    with open(os.path.join(dataset_dir, "cat_to_name.json"), "w") as f:
        json.dump({str(y): names[y - 1] for y in (1, 2, 3)}, f)
    split_path = os.path.join(dataset_dir, "split_zhou_OxfordFlowers.json")
    if split_file:
        _write_split(split_path, os.path.join(dataset_dir, "jpg"), _by_position(groups))
    return dataset_dir, names, {"train": 6, "val": 3, "test": 6}, split_path, images


def _trainval_sizes(n_classes, split_file):
    """Trainval/test datasets: the written split puts trainval image 2 in val and the rest in train (4/1);
    CoOp's 80/20 fallback on 5 trainval images gives the same sizes."""
    return {"train": 4 * n_classes, "val": n_classes, "test": TEST * n_classes}


def _trainval_split(groups_tv, groups_te):
    out = {"train": [], "val": [], "test": []}
    for label, (cname, paths) in groups_tv.items():
        for i, p in enumerate(paths):
            out["val" if i == 2 else "train"].append((p, label, cname))
    for label, (cname, paths) in groups_te.items():
        out["test"] += [(p, label, cname) for p in paths]
    return out


def _oxford_pets(root, split_file):
    names = description_keys("oxford_pets")[:3]  # abyssinian (a cat: capitalised file names), two dogs
    dataset_dir = os.path.join(root, "oxford_pets")
    image_dir = os.path.join(dataset_dir, "images")
    stems = {"abyssinian": "Abyssinian"}
    tv_lines, te_lines, groups_tv, groups_te, images = [], [], {}, {}, []
    for label, cname in enumerate(names):
        stem = stems.get(cname, cname)
        species = 1 if stem[0].isupper() else 2
        groups_tv[label], groups_te[label] = (cname, []), (cname, [])
        for i in range(TRAINVAL + TEST):
            imname = f"{stem}_{i + 1}"
            path = write_image(os.path.join(image_dir, imname + ".jpg"))
            images.append(path)
            line = f"{imname} {label + 1} {species} {label + 1}"
            if i < TRAINVAL:
                tv_lines.append(line)
                groups_tv[label][1].append(path)
            else:
                te_lines.append(line)
                groups_te[label][1].append(path)
    _write_text(os.path.join(dataset_dir, "annotations", "trainval.txt"), tv_lines)
    _write_text(os.path.join(dataset_dir, "annotations", "test.txt"), te_lines)
    split_path = os.path.join(dataset_dir, "split_zhou_OxfordPets.json")
    if split_file:
        _write_split(split_path, image_dir, _trainval_split(groups_tv, groups_te))
    return dataset_dir, names, _trainval_sizes(3, split_file), split_path, images


def _stanford_cars(root, split_file):
    from scipy.io import savemat

    names = description_keys("stanford_cars")[:3]
    raw = [" ".join(n.split(" ")[1:] + [n.split(" ")[0]]) for n in names]  # year back at the end
    dataset_dir = os.path.join(root, "stanford_cars")
    images, groups_tv, groups_te = [], {}, {}
    annos = {"cars_train": [], "cars_test": []}
    for label, cname in enumerate(names):
        groups_tv[label], groups_te[label] = (cname, []), (cname, [])
        for i in range(TRAINVAL + TEST):
            folder = "cars_train" if i < TRAINVAL else "cars_test"
            fname = f"{len(annos[folder]) + 1:05d}.jpg"
            path = write_image(os.path.join(dataset_dir, folder, fname))
            images.append(path)
            annos[folder].append((fname, label + 1))
            (groups_tv if folder == "cars_train" else groups_te)[label][1].append(path)

    def struct(rows):
        arr = np.zeros((1, len(rows)), dtype=[("fname", "O"), ("class", "O")])
        for i, (fname, y) in enumerate(rows):
            arr[0, i] = (fname, np.array([[y]], dtype=np.uint8))
        return arr

    os.makedirs(os.path.join(dataset_dir, "devkit"), exist_ok=True)
    savemat(os.path.join(dataset_dir, "devkit", "cars_train_annos.mat"), {"annotations": struct(annos["cars_train"])})
    savemat(os.path.join(dataset_dir, "cars_test_annos_withlabels.mat"), {"annotations": struct(annos["cars_test"])})
    meta = np.empty((1, len(raw)), dtype=object)
    for i, r in enumerate(raw):
        meta[0, i] = r
    savemat(os.path.join(dataset_dir, "devkit", "cars_meta.mat"), {"class_names": meta})
    split_path = os.path.join(dataset_dir, "split_zhou_StanfordCars.json")
    if split_file:
        _write_split(split_path, dataset_dir, _trainval_split(groups_tv, groups_te))
    return dataset_dir, names, _trainval_sizes(3, split_file), split_path, images


def _sun397(root, split_file):
    keys = description_keys("sun397")
    names = [keys[0], keys[1], "outdoor apartment_building"]
    folders = []
    for n in names:  # 'outdoor apartment_building' -> 'a/apartment_building/outdoor'
        parts = n.split(" ")[::-1]
        folders.append("/".join([parts[0][0]] + parts))
    dataset_dir = os.path.join(root, "sun397")
    image_dir = os.path.join(dataset_dir, "SUN397")
    _write_text(os.path.join(dataset_dir, "ClassName.txt"), ["/" + f for f in folders])
    tv_lines, te_lines, groups_tv, groups_te, images = [], [], {}, {}, []
    for label, (cname, folder) in enumerate(zip(names, folders, strict=False)):
        groups_tv[label], groups_te[label] = (cname, []), (cname, [])
        for i in range(TRAINVAL + TEST):
            rel = f"{folder}/sun_{label}{i:03d}.jpg"
            path = write_image(os.path.join(image_dir, rel))
            images.append(path)
            if i < TRAINVAL:
                tv_lines.append("/" + rel)
                groups_tv[label][1].append(path)
            else:
                te_lines.append("/" + rel)
                groups_te[label][1].append(path)
    _write_text(os.path.join(dataset_dir, "Training_01.txt"), tv_lines)
    _write_text(os.path.join(dataset_dir, "Testing_01.txt"), te_lines)
    split_path = os.path.join(dataset_dir, "split_zhou_SUN397.json")
    if split_file:
        _write_split(split_path, image_dir, _trainval_split(groups_tv, groups_te))
    return dataset_dir, names, _trainval_sizes(3, split_file), split_path, images


def _ucf101(root, split_file):
    names = description_keys("ucf101")[:3]
    dataset_dir = os.path.join(root, "ucf101")
    image_dir = os.path.join(dataset_dir, "UCF-101-midframes")
    tv_lines, te_lines, cls_lines, groups_tv, groups_te, images = [], [], [], {}, {}, []
    for label, cname in enumerate(names):
        action = cname.replace("_", "")
        cls_lines.append(f"{label + 1} {action}")
        groups_tv[label], groups_te[label] = (cname, []), (cname, [])
        for i in range(TRAINVAL + TEST):
            stem = f"v_{action}_g{i + 1:02d}_c01"
            path = write_image(os.path.join(image_dir, cname, stem + ".jpg"))
            images.append(path)
            if i < TRAINVAL:
                tv_lines.append(f"{action}/{stem}.avi {label + 1}")
                groups_tv[label][1].append(path)
            else:
                te_lines.append(f"{action}/{stem}.avi")
                groups_te[label][1].append(path)
    lists = os.path.join(dataset_dir, "ucfTrainTestlist")
    _write_text(os.path.join(lists, "classInd.txt"), cls_lines)
    _write_text(os.path.join(lists, "trainlist01.txt"), tv_lines)
    _write_text(os.path.join(lists, "testlist01.txt"), te_lines)
    split_path = os.path.join(dataset_dir, "split_zhou_UCF101.json")
    if split_file:
        _write_split(split_path, image_dir, _trainval_split(groups_tv, groups_te))
    return dataset_dir, names, _trainval_sizes(3, split_file), split_path, images


IMAGENET_CLASSES = [("n01440764", "tench"), ("n01443537", "goldfish"), ("n03773504", "missile"),
                    ("n04008634", "missile")]  # "missile" is one of ImageNet's two repeated names


def _imagenet(root, split_file):
    keys = set(description_keys("I"))
    assert all(name in keys for _, name in IMAGENET_CLASSES)
    dataset_dir = os.path.join(root, "imagenet")
    _write_text(os.path.join(dataset_dir, "classnames.txt"), [f"{w} {n}" for w, n in IMAGENET_CLASSES])
    images = []
    for wnid, _ in IMAGENET_CLASSES:
        images += [write_image(os.path.join(dataset_dir, "images", "train", wnid, f"{wnid}_{i}.JPEG"))
                   for i in range(3)]
        images += [write_image(os.path.join(dataset_dir, "images", "val", wnid, f"ILSVRC2012_val_{wnid}_{i}.JPEG"))
                   for i in range(2)]
    n = len(IMAGENET_CLASSES)
    names = [name for _, name in sorted(IMAGENET_CLASSES)]
    return dataset_dir, names, {"train": 3 * n, "val": 2 * n, "test": 2 * n}, "", images


def _imagenet_variant(folder, image_folder, wnids=None, numbered=False):
    """A test-only ImageNet variant: classnames.txt (ImageNet's), 2 images in each class folder named
    by wnid (numbered: by the class's line in classnames.txt); ``wnids``: the subset present (A, R)."""
    def builder(root, split_file):
        dataset_dir = os.path.join(root, folder)
        _write_text(os.path.join(dataset_dir, "classnames.txt"), [f"{w} {n}" for w, n in IMAGENET_CLASSES])
        order = [w for w, _ in IMAGENET_CLASSES]
        present = sorted(wnids or order)
        images = []
        for wnid in present:
            sub = str(order.index(wnid)) if numbered else wnid
            images += [write_image(os.path.join(dataset_dir, image_folder, sub, f"{wnid}_{i}.jpg")) for i in range(2)]
        if not numbered:  # CoOp's A and R archives hold a README.txt beside the class folders
            _write_text(os.path.join(dataset_dir, image_folder, "README.txt"), ["not a class"])
        names = [dict(IMAGENET_CLASSES)[w] for w in present]
        n = len(present)
        return dataset_dir, names, {"train": 2 * n, "val": 0, "test": 2 * n}, "", images
    return builder


IMAGENET_SUBSET = ("n01443537", "n04008634")  # goldfish, missile: the 200-class variants' miniature subset

BUILDERS = {
    "caltech101": _caltech101,
    "dtd": _simple_folders("dtd", "images", "split_zhou_DescribableTextures.json", "dtd"),
    "eurosat": _eurosat,
    "fgvc_aircraft": _fgvc_aircraft,
    "food101": _simple_folders("food-101", "images", "split_zhou_Food101.json", "food101"),
    "oxford_flowers": _oxford_flowers,
    "oxford_pets": _oxford_pets,
    "stanford_cars": _stanford_cars,
    "sun397": _sun397,
    "ucf101": _ucf101,
    "resisc45": _simple_folders("resisc45", "NWPU-RESISC45", "split_mlai_Resisc45.json", "resisc45"),
    "imagenet": _imagenet,
    "imagenetv2": _imagenet_variant("imagenetv2", "imagenetv2-matched-frequency-format-val", numbered=True),
    "imagenet_sketch": _imagenet_variant("imagenet-sketch", "images"),
    "imagenet_a": _imagenet_variant("imagenet-adversarial", "imagenet-a", wnids=IMAGENET_SUBSET),
    "imagenet_r": _imagenet_variant("imagenet-rendition", "imagenet-r", wnids=IMAGENET_SUBSET),
}


def build(name, root, split_file=True):
    """Write the miniature of dataset ``name`` under ``root``; see the module docstring."""
    dataset_dir, classnames, sizes, split_path, images = BUILDERS[name](str(root), split_file)
    return Miniature(name, str(root), dataset_dir, classnames, sizes, split_path, images)
