"""Issue 19: derived data files record what they were derived from, runs record the data they used, and
nothing stale is used silently (few-shot caches vs. splits, splits vs. images, per-class results)."""
import json
import os
import shutil

import pytest

from tests.dataset_helpers import load, make_folder
from tests.dataset_miniatures import build, write_image


def _paths(items):
    return {d.impath for d in items}


def test_imagefolder_resplit_after_adding_a_class_draws_the_cache_again(tmp_path, capsys):
    """The issue's case: a class folder added, split_ImageFolder.json deleted as advised: the old cache
    (2 classes, its training images now partly in the test split) was reused."""
    folder = make_folder(tmp_path / "pets", ["cat", "dog"])
    first = load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=1)
    assert first.num_classes == 2
    make_folder(tmp_path / "pets", ["ant"])  # sorts first: every label shifts
    split = os.path.join(folder, "split_ImageFolder.json")
    with pytest.raises(ValueError, match=r"changed since .*split_ImageFolder.json was made from them \(10 then, "
                                         r"15 now: 5 added \(ant/0.png"):
        load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=1)
    os.remove(split)
    capsys.readouterr()
    ds = load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=1)
    out = capsys.readouterr().out
    cache = os.path.join(folder, "split_fewshot", "shot_1-seed_1.pkl")
    assert f"Note: few-shot cache {cache} was drawn from another split than split file {split}" in out
    assert ds.num_classes == 3 and ds.classnames == ["ant", "cat", "dog"]
    assert {d.label for d in ds.train_x} == {0, 1, 2}
    assert not _paths(ds.train_x) & _paths(ds.test)
    assert all(ds.lab2cname[d.label] == os.path.basename(os.path.dirname(d.impath)) for d in ds.train_x + ds.test)


def test_a_replaced_split_file_draws_the_cache_again(tmp_path, capsys):
    """Caltech101's split file replaced by another (train and test swapped): no cached training image may
    end up in the new test split."""
    mini = build("caltech101", tmp_path)
    load(tmp_path, "Caltech101", NUM_SHOTS=1)
    with open(mini.split_path) as f:
        split = json.load(f)
    split["train"], split["test"] = split["test"], split["train"]
    with open(mini.split_path, "w") as f:
        json.dump(split, f)
    capsys.readouterr()
    ds = load(tmp_path, "Caltech101", NUM_SHOTS=1)
    out = capsys.readouterr().out
    assert "was drawn from another split than split file " + mini.split_path in out
    assert "drawing it again" in out
    assert not _paths(ds.train_x) & _paths(ds.test)
    capsys.readouterr()
    load(tmp_path, "Caltech101", NUM_SHOTS=1)  # the new cache matches: used as it is
    assert "drawing it again" not in capsys.readouterr().out


def test_a_cache_without_identity_is_drawn_again_and_said(tmp_path, capsys):
    from engine import load_fewshot_cache, save_fewshot_cache

    build("dtd", tmp_path)
    ds = load(tmp_path, "DescribableTextures", NUM_SHOTS=2)
    path = tmp_path / "dtd" / "split_fewshot" / "shot_2-seed_1.pkl"
    save_fewshot_cache(str(path), {"train": ds.train_x[:1], "val": ds.val[:1]})  # as CoOp or older code wrote it
    capsys.readouterr()
    again = load(tmp_path, "DescribableTextures", NUM_SHOTS=2)
    assert "records no identity of the split it was drawn from" in capsys.readouterr().out
    assert len(again.train_x) == len(ds.train_x)
    assert load_fewshot_cache(str(path))["identity"]["split_sha256"] == again.split_sha256


def test_cached_images_take_the_current_class_names(tmp_path):
    """Names are applied at load time (ImageFolder's docstring): a cache made before must not keep the old
    ones; and a result made with other names is not done (the names file is one of its data sources)."""
    from engine.data_identity import dataset_identity
    from runs.data_check import data_problems

    make_folder(tmp_path / "pets", ["cat", "dog"])
    load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=1)
    names = tmp_path / "pets" / "names.txt"
    names.write_text("cat house cat\n")
    ds = load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=1, CLASSNAMES_FILE="names.txt")
    assert ds.classnames == ["house cat", "dog"]
    assert {d.classname for d in ds.train_x} == {"house cat", "dog"}
    results = {"data_identity": dataset_identity(ds), "data_sources": ds.data_sources}
    assert data_problems(results, str(tmp_path)) == []
    names.write_text("cat kitty\n")
    assert data_problems(results, str(tmp_path)) == [f"split file {names} changed since this run (sha256 differs)"]
    names.write_text("cat house cat\n")
    (tmp_path / "pets" / "dog" / "notes.txt").write_text("not an image: the loader never reads it")
    (tmp_path / "pets" / "dog" / "Thumbs.db").write_bytes(b"\0")
    assert data_problems(results, str(tmp_path)) == []  # still done: the same images
    write_image(str(tmp_path / "pets" / "dog" / "new.png"))  # the split would now be refused: not done
    assert data_problems(results, str(tmp_path)) == [
        f"the files in {tmp_path / 'pets'} changed since this run (files added or removed)"]


def test_datasets_check_reports_a_stale_cache_and_a_split_that_no_longer_matches(tmp_path, capsys):
    from datasets import check

    mini = build("dtd", tmp_path)
    load(tmp_path, "DescribableTextures", NUM_SHOTS=1)
    assert check.main(["--root", str(tmp_path), "dtd", "--quick"]) == 0
    assert "few-shot cache" not in capsys.readouterr().out
    with open(mini.split_path) as f:
        split = json.load(f)
    split["train"], split["test"] = split["test"], split["train"]
    with open(mini.split_path, "w") as f:
        json.dump(split, f)
    check.main(["--root", str(tmp_path), "dtd", "--quick"])
    out = capsys.readouterr().out
    assert "shot_1-seed_1.pkl does not match its split: it was drawn from another split than split file" in out

    folder = make_folder(tmp_path / "mine", ["a", "b"])
    load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="mine")
    write_image(os.path.join(folder, "b", "new.png"))
    assert check.main(["--root", str(tmp_path), "imagefolder", "--folder", "mine", "--quick"]) == 1
    out = capsys.readouterr().out
    assert "imagefolder" in out and ": incomplete" in out
    assert "1 added (b/new.png)" in out and "delete " + os.path.join(folder, "split_ImageFolder.json") in out


def test_per_class_results_keep_classes_of_the_same_name():
    from engine.results import evaluation_summary

    summary = evaluation_summary([0, 0, 1, 1, 2], [0, 1, 1, 1, 2], {0: "missile", 1: "missile", 2: "Cat"})
    assert summary["per_class"] == {"0": {"name": "missile", "accuracy": 50.0},
                                    "1": {"name": "missile", "accuracy": 100.0},
                                    "2": {"name": "Cat", "accuracy": 100.0}}


def test_classes_whose_names_collide_are_warned_about_once(tmp_path, capsys):
    make_folder(tmp_path / "pets", ["a", "b", "c"])
    (tmp_path / "pets" / "names.txt").write_text("a Cat\nb cat\n")
    load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets", CLASSNAMES_FILE="names.txt")
    out = capsys.readouterr().out
    assert out.count("Warning: 1 group(s) of classes share a name") == 1
    assert "'Cat' (label 0) / 'cat' (label 1)" in out


def test_data_identity_and_the_done_check_follow_the_data(tmp_path):
    """What results.json records (engine/data_identity.py) and what the sweep compares (runs/data_check.py)."""
    from engine.data_identity import dataset_identity
    from runs.data_check import data_problems

    mini = build("caltech101", tmp_path)
    ds = load(tmp_path, "Caltech101", NUM_SHOTS=1)
    identity = dataset_identity(ds)
    assert all(isinstance(v, (str, int)) for v in identity.values())
    assert identity["num_classes"] == len(mini.classnames) and identity["num_train"] == len(ds.train_x)
    results = {"data_identity": identity, "data_sources": ds.data_sources}
    assert [s["path"] for s in ds.data_sources] == ["caltech-101", "caltech-101/split_zhou_Caltech101.json",
                                                    "caltech-101/split_fewshot/shot_1-seed_1.pkl"]
    assert data_problems(results, str(tmp_path)) == []
    moved = tmp_path / "elsewhere"  # the same data under another root: the same identity, still done
    shutil.copytree(mini.dataset_dir, moved / "caltech-101")
    assert data_problems(results, str(moved)) == []
    assert dataset_identity(load(moved, "Caltech101", NUM_SHOTS=-1))["split_sha256"] == identity["split_sha256"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert data_problems(results, str(empty)) == [f"data not found: no dataset folder {empty}/caltech-101"]
    # another draw in the cache (seed 2's draw saved under seed 1's name): the result is stale
    cache = os.path.join(mini.dataset_dir, "split_fewshot")
    load(tmp_path, "Caltech101", NUM_SHOTS=1, )
    other = load(tmp_path / "elsewhere", "Caltech101", NUM_SHOTS=2)
    shutil.copy(os.path.join(moved, "caltech-101", "split_fewshot", "shot_2-seed_1.pkl"),
                os.path.join(cache, "shot_1-seed_1.pkl"))
    assert dataset_identity(other)["fewshot_sha256"] != identity["fewshot_sha256"]
    assert data_problems(results, str(tmp_path)) == [
        f"few-shot cache {cache}/shot_1-seed_1.pkl holds another draw than this run used"]


def test_an_edited_description_file_is_other_data(toy_root, tmp_path):
    """Issue 19, second pass: editing a description file in place (same path, so the same config) changes
    AttrVR's numbers; the finished run is no longer done and a table never averages it with a new seed."""
    from engine.results import build_results
    from results.identity import frozen, settings_of
    from runs.data_check import data_problems
    from tests.trainer_fixtures import make_trainer, toy_cfg, write_toy_descriptions

    desc = write_toy_descriptions(tmp_path / "desc")

    def results_of_a_run():
        cfg = toy_cfg("AttrVR", toy_root, tmp_path / "out", desc, epochs=1)
        return json.loads(json.dumps(build_results(cfg, make_trainer(cfg), 0.0)))

    before = results_of_a_run()
    assert data_problems(before, toy_root) == []
    path = os.path.join(desc, "attributes", "toy_des.json")
    with open(path) as f:
        data = json.load(f)
    data = {c: [s.replace("thing", "object") for s in sentences] for c, sentences in data.items()}
    with open(path, "w") as f:
        json.dump(data, f)
    assert data_problems(before, toy_root) == [f"descriptions file {path} changed since this run (sha256 differs)"]
    assert frozen(settings_of(results_of_a_run())) != frozen(settings_of(before))


def test_a_plugin_loaders_split_identity_is_the_same_for_every_seed(toy_root):
    """A loader without its own split hash (a plugin DatasetBase) holds only the few-shot draw as training list:
    the split identity must not take it in, or two seeds of one setting would be 'other data' in the tables."""
    from engine import set_random_seed
    from engine.data_identity import dataset_identity
    from plugins import project_cfg
    from tests.toy_plugin import ToyColors

    identities = []
    for seed in (1, 2):
        cfg = project_cfg()
        cfg.DATASET.ROOT, cfg.DATASET.NUM_SHOTS = toy_root, 2
        set_random_seed(seed)
        identities.append(dataset_identity(ToyColors(cfg)))
    first, second = identities
    assert first["fewshot_sha256"] != second["fewshot_sha256"]  # each seed draws its own shots
    assert {k: v for k, v in first.items() if k != "fewshot_sha256"} == \
        {k: v for k, v in second.items() if k != "fewshot_sha256"}
