"""The 12 CoOp-style loaders on miniature layouts: loading, split sizes, class names against the published
description keys, fallback split creation, base/new subsampling, ImageFolder, and the bad-input errors."""
import json
import os
import re

import pytest

from tests.dataset_helpers import load, make_cfg, make_folder, relpaths
from tests.dataset_miniatures import CLASS_NAMES, DESCRIPTION_KEYS, NAMES, build, description_keys

FALLBACK = [n for n in NAMES if n not in ("fgvc_aircraft", "imagenet")]


def sizes(ds):
    return {"train": len(ds.train_x), "val": len(ds.val), "test": len(ds.test)}


@pytest.mark.parametrize("name", NAMES)
def test_loader_reads_miniature(tmp_path, name):
    mini = build(name, tmp_path)
    ds = load(tmp_path, CLASS_NAMES[name])
    assert sizes(ds) == mini.sizes
    assert ds.classnames == mini.classnames
    assert ds.num_classes == len(mini.classnames)
    # every item's class name matches its label, in every split
    for items in (ds.train_x, ds.val, ds.test):
        assert all(ds.lab2cname[d.label] == d.classname for d in items)
    # the contract with the description files: names are keys, in the keys' (CoOp's label) order
    keys = description_keys(DESCRIPTION_KEYS[name])
    assert set(ds.classnames) <= set(keys)
    positions = [keys.index(c) for c in ds.classnames]
    assert positions == sorted(positions)
    assert type(ds).descriptions_key == DESCRIPTION_KEYS[name]


def test_configs_name_every_loader():
    import yaml

    import datasets

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for cls in datasets.LOADERS:
        with open(os.path.join(repo, "configs", "datasets", f"{cls.config_name}.yaml")) as f:
            assert yaml.safe_load(f)["DATASET"]["NAME"] == cls.__name__
    with open(os.path.join(repo, "configs", "datasets", "imagefolder.yaml")) as f:
        assert yaml.safe_load(f)["DATASET"]["NAME"] == "ImageFolder"


def test_renaming_rules_cover_every_published_key():
    """The renames CoOp applies produce exactly the published names, checked on the full key lists."""
    from datasets.caltech101 import NEW_CNAMES as CALTECH
    from datasets.eurosat import NEW_CNAMES as EUROSAT
    from datasets.stanford_cars import year_first
    from datasets.sun397 import sun_classname
    from datasets.ucf101 import ucf_classname

    assert sorted(EUROSAT.values()) == sorted(description_keys("eurosat"))
    caltech = description_keys("caltech101")
    assert len(caltech) == 100 and set(CALTECH.values()) <= set(caltech) and not set(CALTECH) & set(caltech)
    for key in description_keys("ucf101"):  # UCF's folders are the keys without underscores
        assert ucf_classname(key.replace("_", "")) == key
    for key in description_keys("sun397"):
        parts = key.split(" ")[::-1]
        assert sun_classname("/".join([parts[0][0]] + parts)) == key
    assert year_first("AM General Hummer SUV 2000") == "2000 AM General Hummer SUV"
    assert len(description_keys("stanford_cars")) == 196 and len(description_keys("fgvc")) == 100


def test_imagenet_names_have_two_duplicates():
    """CLIP's ImageNet names (CoOp's classnames.txt) repeat 'missile' and 'sunglasses': 1000 labels, 998 keys."""
    zero_shot = pytest.importorskip("open_clip.zero_shot_metadata")
    names = list(zero_shot.IMAGENET_CLASSNAMES)
    keys = description_keys("I")
    assert len(names) == 1000 and len(keys) == 998
    assert sorted(n for n in set(names) if names.count(n) > 1) == ["missile", "sunglasses"]
    assert list(dict.fromkeys(names)) == keys


@pytest.mark.parametrize("name", FALLBACK)
def test_fallback_split_is_created_once_and_seeded(tmp_path, name):
    mini = build(name, tmp_path / "a", split_file=False)
    assert not os.path.exists(mini.split_path)
    ds = load(tmp_path / "a", CLASS_NAMES[name])
    assert sizes(ds) == mini.sizes and ds.classnames == mini.classnames
    with open(mini.split_path) as f:
        split = json.load(f)
    assert sorted(split) == ["made_from", "test", "train", "val"]  # made_from: the image list it was made from
    assert split.pop("made_from")["num_images"] == sum(mini.sizes.values())
    assert all(len(row) == 3 and not os.path.isabs(row[0]) for rows in split.values() for row in rows)
    mtime = os.path.getmtime(mini.split_path)
    again = load(tmp_path / "a", CLASS_NAMES[name])  # reads the saved file
    assert os.path.getmtime(mini.split_path) == mtime
    assert relpaths(again.train_x, tmp_path / "a") == relpaths(ds.train_x, tmp_path / "a")
    # a second copy of the dataset gets the same split, whatever the run's seed
    build(name, tmp_path / "b", split_file=False)
    other = load(tmp_path / "b", CLASS_NAMES[name])
    assert relpaths(other.val, tmp_path / "b") == relpaths(ds.val, tmp_path / "a")


def test_imagenet_preprocessed_and_test_as_val(tmp_path):
    build("imagenet", tmp_path)
    ds = load(tmp_path, "ImageNet")
    pkl = tmp_path / "imagenet" / "preprocessed.pkl"
    assert pkl.exists()
    assert relpaths(ds.val, tmp_path) == relpaths(ds.test, tmp_path)
    assert ds.classnames == ["tench", "goldfish", "missile", "missile"]
    os.remove(tmp_path / "imagenet" / "classnames.txt")  # the pickle is enough from now on
    again = load(tmp_path, "ImageNet")
    assert relpaths(again.train_x, tmp_path) == relpaths(ds.train_x, tmp_path)


@pytest.mark.parametrize("subsample,expected", [("base", ["face", "leopard", "motorbike"]),
                                                ("new", ["accordion", "airplane"])])
def test_base_new_subsampling(tmp_path, subsample, expected):
    build("caltech101", tmp_path)
    ds = load(tmp_path, "Caltech101", NUM_SHOTS=2, SUBSAMPLE_CLASSES=subsample)
    assert ds.classnames == expected and ds.num_classes == len(expected)
    for items in (ds.train_x, ds.val, ds.test):
        assert sorted({d.label for d in items}) == list(range(len(expected)))
    assert len(ds.train_x) == 2 * len(expected) and len(ds.test) == 2 * len(expected)
    # CoOp writes the few-shot cache before subsampling: it holds all 5 classes
    from engine import load_fewshot_cache

    cache = load_fewshot_cache(str(tmp_path / "caltech-101" / "split_fewshot" / "shot_2-seed_1.pkl"))
    assert len({d.label for d in cache["train"]}) == 5


def test_subsample_rejects_unknown_value(tmp_path):
    build("dtd", tmp_path)
    with pytest.raises(ValueError, match="SUBSAMPLE_CLASSES must be one of"):
        load(tmp_path, "DescribableTextures", SUBSAMPLE_CLASSES="half")


# ---- bad input -----------------------------------------------------------------------------------

def test_missing_dataset_folder_names_layout_and_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path, "DescribableTextures")
    msg = str(err.value)
    assert str(tmp_path / "dtd") in msg and "images/<class>" in msg
    assert f"python -m datasets.download dtd --root {tmp_path}" in msg


def test_missing_image_folder_is_named(tmp_path):
    os.makedirs(tmp_path / "eurosat")
    with pytest.raises(FileNotFoundError, match=r"EuroSAT image folder not found: .*2750"):
        load(tmp_path, "EuroSAT")


def test_split_naming_missing_images_lists_first_few_and_count(tmp_path):
    mini = build("food101", tmp_path)
    with open(mini.split_path) as f:
        listed = [row[0] for row in json.load(f)["train"]]
    for rel in listed[:6]:
        os.remove(os.path.join(mini.dataset_dir, "images", rel))
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path, "Food101")
    msg = str(err.value)
    assert "6 of 6 images listed in split file" in msg and mini.split_path in msg
    assert msg.count(os.path.join(mini.dataset_dir, "images")) == 5 and "and 1 more" in msg


def test_missing_annotation_file_for_fallback(tmp_path):
    mini = build("oxford_pets", tmp_path, split_file=False)
    os.remove(os.path.join(mini.dataset_dir, "annotations", "test.txt"))
    with pytest.raises(FileNotFoundError, match=r"OxfordPets file annotations/test.txt not found"):
        load(tmp_path, "OxfordPets")


def test_malformed_split_file(tmp_path):
    mini = build("resisc45", tmp_path)
    with open(mini.split_path, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="is not valid json"):
        load(tmp_path, "Resisc45")


def test_too_few_images_for_fallback_split(tmp_path):
    mini = build("dtd", tmp_path, split_file=False)
    folder = os.path.join(mini.dataset_dir, "images", "braided")
    for name in sorted(os.listdir(folder))[:3]:
        os.remove(os.path.join(folder, name))
    with pytest.raises(ValueError, match="'braided' has 2 images, too few"):
        load(tmp_path, "DescribableTextures")


def test_read_image_names_the_corrupt_file(tmp_path):
    import torch

    from datasets.imageio import ImageReadError, read_image

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match=re.escape(str(bad))):
        read_image(str(bad))
    with pytest.raises(FileNotFoundError, match="Image not found"):
        read_image(str(tmp_path / "nope.jpg"))

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return torch.tensor(read_image(str(bad)).size)

    loader = torch.utils.data.DataLoader(Images(), num_workers=1)
    with pytest.raises(ImageReadError) as err:  # re-raised from the worker with its message
        next(iter(loader))
    assert str(bad) in str(err.value) and "corrupt" in str(err.value)


def test_corrupt_image_fails_with_path_in_data_loader_workers(tmp_path):
    from engine import DataManager

    mini = build("dtd", tmp_path)
    with open(mini.split_path) as f:
        rel = json.load(f)["test"][0][0]
    bad = os.path.join(mini.dataset_dir, "images", rel)
    with open(bad, "wb") as f:
        f.write(b"garbage")
    cfg = make_cfg(tmp_path, "DescribableTextures")
    cfg.DATALOADER.NUM_WORKERS = 1
    cfg.INPUT.SIZE = (8, 8)
    dm = DataManager(cfg)
    with pytest.raises(Exception) as err:
        for _ in dm.test_loader:
            pass
    assert bad in str(err.value)


# ---- ImageFolder (your own data) ------------------------------------------------------------------

def test_imagefolder_split_renames_and_reuse(tmp_path):
    folder = make_folder(tmp_path / "pets", ["cat", "dog", "fox"])
    with open(tmp_path / "pets" / "names.json", "w") as f:
        json.dump({"fox": "red fox"}, f)
    ds = load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", CLASSNAMES_FILE="names.json", NUM_SHOTS=1)
    assert ds.classnames == ["cat", "dog", "red fox"]
    assert sizes(ds) == {"train": 3, "val": 3, "test": 6}  # 1 shot; 5 images -> 2/1/2
    split_path = os.path.join(folder, "split_ImageFolder.json")
    assert os.path.exists(split_path) and os.path.exists(os.path.join(folder, "split_fewshot", "shot_1-seed_1.pkl"))
    assert ds.descriptions_key == "pets"
    mtime = os.path.getmtime(split_path)
    # renaming is applied at load time, the split file is reused
    with open(tmp_path / "pets" / "names.txt", "w") as f:
        f.write("cat house cat\n")
    again = load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR=str(tmp_path / "pets"), CLASSNAMES_FILE="names.txt",
                 DESCRIPTIONS_KEY="my_pets")
    assert again.classnames == ["house cat", "dog", "fox"] and again.descriptions_key == "my_pets"
    assert os.path.getmtime(split_path) == mtime
    assert sizes(again) == {"train": 6, "val": 3, "test": 6}


def test_imagefolder_descriptions_key_helper(tmp_path):
    import datasets

    cfg = make_cfg(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="some/where/flowers_mine/")
    assert datasets.descriptions_key(cfg) == "flowers_mine"
    assert datasets.descriptions_key(make_cfg(tmp_path, "ImageNet")) == "I"
    assert datasets.descriptions_key(make_cfg(tmp_path, "FGVCAircraft")) == "fgvc"
    assert datasets.descriptions_key(make_cfg(tmp_path, "FGVCAircraft", DESCRIPTIONS_KEY="x")) == "x"


def test_imagefolder_bad_input(tmp_path):
    with pytest.raises(ValueError, match="DATASET.IMAGEFOLDER_DIR is empty"):
        load(tmp_path, "ImageFolder")
    with pytest.raises(FileNotFoundError, match="IMAGEFOLDER_DIR not found"):
        load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="nowhere")
    make_folder(tmp_path / "small", ["a", "b"], per_class=3)
    with pytest.raises(ValueError, match="'a' has 3 images"):
        load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="small")
    make_folder(tmp_path / "ok", ["a", "b"])
    with pytest.raises(FileNotFoundError, match="CLASSNAMES_FILE not found"):
        load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="ok", CLASSNAMES_FILE="missing.json")


def test_imagefolder_feeds_the_data_manager(tmp_path):
    from engine import DataManager

    make_folder(tmp_path / "mine", ["a", "b"])
    cfg = make_cfg(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="mine")
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.SIZE = (8, 8)
    dm = DataManager(cfg)
    batch = next(iter(dm.test_loader))
    assert batch["img"].shape[1:] == (3, 8, 8) and dm.num_classes == 2
    assert dm.lab2cname == {0: "a", 1: "b"}
