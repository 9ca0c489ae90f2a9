"""The built-in Digits dataset: CoOp layout, fixed split, shifts, safe first build, descriptions."""
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from datasets import digits_data as dd
from tests.concurrency import run_at_once

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    """A data root with the 'none' and 'inverted' shifts written (a few seconds each)."""
    root = str(tmp_path_factory.mktemp("digits_root"))
    for shift in ("none", "inverted"):
        dd.build_digits(root, shift, verbose=False)
    return root


def read_split(root, shift):
    with open(os.path.join(root, "digits", shift, dd.SPLIT_FILE)) as f:
        return json.load(f)


def _cfg(root, shift="none", shots=-1, seed=1):
    from plugins import project_cfg

    cfg = project_cfg()
    cfg.merge_from_file(os.path.join(REPO, "configs", "datasets", "digits.yaml"))
    cfg.DATASET.ROOT = root
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.DIGITS_SHIFT = shift
    cfg.SEED = seed
    return cfg


# ------------------------------------------------------------------------------------- the split
def test_split_is_fixed_stratified_and_holds_out_the_test_part():
    parts = dd.split_indices()
    assert {k: len(v) for k, v in parts.items()} == {"train": 1260, "val": 140, "test": 397}
    every = [i for part in parts.values() for i in part]
    assert sorted(every) == list(range(1797))  # disjoint and complete
    _, labels = dd.load_arrays()
    assert set(np.bincount(labels[list(parts["test"])])) <= {39, 40}  # stratified
    pretrain = set(dd.pretrain_indices())
    assert pretrain == set(parts["train"]) | set(parts["val"])
    assert not pretrain & set(parts["test"])
    # the split does not depend on global random state
    np.random.seed(123)
    dd.split_indices.cache_clear()
    assert dd.split_indices() == parts


# -------------------------------------------------------------------------------- files on disk
@pytest.mark.slow
def test_build_writes_the_coop_layout(digits_root):
    folder = os.path.join(digits_root, "digits", "none")
    assert sorted(os.listdir(folder)) == ["digits_meta.json", "images", dd.SPLIT_FILE]
    assert sorted(os.listdir(os.path.join(folder, "images"))) == sorted(dd.CLASSNAMES)
    split = read_split(digits_root, "none")
    assert {k: len(v) for k, v in split.items()} == {"train": 1260, "val": 140, "test": 397}
    _, labels = dd.load_arrays()
    for _name, rows in split.items():
        for relpath, label, classname in rows:
            assert isinstance(relpath, str) and isinstance(label, int) and isinstance(classname, str)
            assert classname == dd.CLASSNAMES[label]
            assert relpath == f"{classname}/{int(relpath[-8:-4]):04d}.png"
            assert labels[int(relpath[-8:-4])] == label
    sample = os.path.join(folder, "images", split["test"][0][0])
    with Image.open(sample) as img:
        assert img.size == (dd.IMAGE_SIZE, dd.IMAGE_SIZE) and img.mode == "RGB"
    n_files = sum(len(files) for _, _, files in os.walk(os.path.join(folder, "images")))
    assert n_files == 1797
    # nothing left behind by the build
    assert sorted(os.listdir(os.path.join(digits_root, "digits"))) == ["inverted", "none"]


@pytest.mark.slow
def test_a_second_build_reuses_the_folder(digits_root, capsys):
    folder = os.path.join(digits_root, "digits", "none")
    before = os.stat(os.path.join(folder, dd.SPLIT_FILE)).st_mtime_ns
    assert dd.build_digits(digits_root, "none") == folder
    assert os.stat(os.path.join(folder, dd.SPLIT_FILE)).st_mtime_ns == before
    assert "writing" not in capsys.readouterr().out


@pytest.mark.slow
def test_shifts_change_pixels_but_not_labels_or_split(digits_root):
    assert read_split(digits_root, "none") == read_split(digits_root, "inverted")
    rel = read_split(digits_root, "none")["train"][5][0]
    none = np.asarray(Image.open(os.path.join(digits_root, "digits", "none", "images", rel)), dtype=int)
    inv = np.asarray(Image.open(os.path.join(digits_root, "digits", "inverted", "images", rel)), dtype=int)
    assert np.abs(none + inv - 255).max() <= 1  # exactly the negative, up to rounding
    base = dd.render(17, "none")
    for shift in dd.SHIFTS:
        img = dd.render(17, shift)
        assert img.shape == base.shape and img.dtype == np.uint8
        assert np.array_equal(img, dd.render(17, shift))  # deterministic (noise included)
        if shift != "none":
            assert np.abs(img.astype(int) - base).mean() > 20, shift
    lo = dd.render(17, "low_contrast")
    assert lo.max() - lo.min() <= 60 < base.max() - base.min()
    tinted = dd.render(17, "tinted")
    assert (tinted[..., 0] != tinted[..., 2]).any()  # coloured, not grey


def _build(root):
    return dd.build_digits(root, "none", verbose=False)


@pytest.mark.slow
def test_concurrent_first_builds_are_safe(tmp_path):
    paths = run_at_once(_build, (str(tmp_path),))
    folder = os.path.join(str(tmp_path), "digits", "none")
    assert paths == [folder, folder]
    assert os.listdir(os.path.join(str(tmp_path), "digits")) == ["none"]  # no temporary folder left
    assert sum(len(f) for _, _, f in os.walk(os.path.join(folder, "images"))) == 1797
    assert read_split(str(tmp_path), "none") == dd.split_json()


def test_an_unfinished_folder_is_reported_with_the_fix(tmp_path):
    os.makedirs(tmp_path / "digits" / "none" / "images")
    with pytest.raises(RuntimeError, match=r"not a complete Digits folder.*rm -r"):
        dd.build_digits(str(tmp_path), "none", verbose=False)


def test_unknown_shift_is_one_clear_error_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r'Unknown digits shift "upside_down".*none, low_contrast, inverted'):
        dd.build_digits(str(tmp_path), "upside_down")
    assert not os.path.exists(tmp_path / "digits")


# ------------------------------------------------------------------------------------- the loader
@pytest.mark.slow
def test_loader_reads_the_split_and_keeps_fewshot_caches_per_shift(digits_root):
    from engine import build_dataset, set_random_seed

    set_random_seed(1)
    full = build_dataset(_cfg(digits_root))
    assert type(full).__name__ == "Digits"
    assert (len(full.train_x), len(full.val), len(full.test)) == (1260, 140, 397)
    assert full.classnames == list(dd.CLASSNAMES) and full.num_classes == 10
    test_ids = {int(os.path.basename(d.impath)[:4]) for d in full.test}
    assert test_ids == set(dd.split_indices()["test"])

    for shift in ("none", "inverted"):
        set_random_seed(1)
        few = build_dataset(_cfg(digits_root, shift, shots=4, seed=1))
        assert len(few.train_x) == 40 and len(few.val) == 40
        folder = os.path.join(digits_root, "digits", shift)
        assert all(d.impath.startswith(folder + os.sep) for d in few.train_x + few.val + few.test)
        assert os.path.isfile(os.path.join(folder, "split_fewshot", "shot_4-seed_1.pkl"))
        picked = sorted(os.path.basename(d.impath) for d in few.train_x)
        if shift == "none":
            first = picked
    assert picked == first  # same seed, same split -> the same images in every shift


@pytest.mark.slow
def test_loader_builds_on_first_use_and_rejects_a_bad_shift(tmp_path, capsys):
    from engine import build_dataset

    with pytest.raises(ValueError, match=r"DATASET.DIGITS_SHIFT.*Valid shifts"):
        build_dataset(_cfg(str(tmp_path), "sideways"))
    assert not os.path.exists(tmp_path / "digits")
    data = build_dataset(_cfg(str(tmp_path), "tinted"))
    assert len(data.test) == 397
    assert "Digits: writing 1797 images" in capsys.readouterr().out


def test_dataset_configs_name_digits_and_a_valid_shift():
    from plugins import project_cfg

    folder = os.path.join(REPO, "configs", "datasets")
    names = sorted(f for f in os.listdir(folder) if f.startswith("digits"))
    assert "digits.yaml" in names and len(names) == len(dd.SHIFTS)
    for name in names:
        cfg = project_cfg()
        cfg.merge_from_file(os.path.join(folder, name))
        assert cfg.DATASET.NAME == "Digits"
        shift = dd.check_shift(cfg.DATASET.DIGITS_SHIFT)
        assert name == ("digits.yaml" if shift == "none" else f"digits_{shift.replace('_', '')}.yaml")


# ---------------------------------------------------------------------------------- descriptions
FILES = {"attributes/digits_des.json": 25, "attributes/digits_dist.json": 25,
         "causes/digits_cse_1.json": 20, "causes/digits_cse_2.json": 20, "causes/digits_cse_3.json": 20}


def test_description_files_name_their_digit_in_every_sentence():
    from descriptions.files import load_descriptions, resolve_file

    for rel, count in FILES.items():
        group, fname = rel.split("/")
        suffix = fname[len("digits_"):-len(".json")]
        path = resolve_file("Digits", group, suffix, descriptions_dir=os.path.join(REPO, "no_such_dir"), key="digits")
        assert path == os.path.join(REPO, "descriptions", "builtin", rel)
        with open(path) as f:
            data = json.load(f)
        assert list(data) == list(dd.CLASSNAMES)  # keys exactly as the loader names the classes
        loaded = load_descriptions(path, dd.CLASSNAMES)
        assert loaded.dropped == 0
        for name, sentences in data.items():
            assert len(sentences) == count and len(set(sentences)) == count
            for s in sentences:
                assert len(s) >= 20 and re.search(rf"\b{name}\b", s), (rel, s)


def test_description_files_are_what_the_generator_writes(tmp_path):
    import importlib.util

    path = os.path.join(REPO, "descriptions", "builtin", "make_digits_descriptions.py")
    spec = importlib.util.spec_from_file_location("make_digits_descriptions", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.main(["--check"]) == 0
    assert gen.main(["--out", str(tmp_path)]) == 0
    for rel in FILES:
        with open(tmp_path / rel, "rb") as a, open(os.path.join(REPO, "descriptions", "builtin", rel), "rb") as b:
            assert a.read() == b.read()
