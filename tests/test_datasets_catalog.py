"""Each dataset loader states its facts once (datasets/catalog.py): what the templates, DVP-cls's v, the
downloads, the tables and the sweep read from it."""
import os
from pathlib import Path

import pytest

import datasets
from datasets import catalog, sources
from engine import get_cfg_default
from runs import catalogue, jobs
from trainers.dvp import dataset_v
from vr import templates_for

REPO = Path(__file__).resolve().parents[1]


def test_zeroshot_templates_come_from_the_loaders():
    assert templates_for("DescribableTextures", "coop") == ["{} texture."]
    assert templates_for("ImageNetSketch", "coop") == ["a photo of a {}."]
    assert templates_for("Digits", "coop") == ['a photo of the digit "{}".']
    assert templates_for("ImageFolder", "coop") == [catalog.DEFAULT_TEMPLATE]
    assert templates_for("DescribableTextures", "vr") == ["This is a photo of {}."]


def _dvp_node(**entries):
    cfg = get_cfg_default()
    import engine

    engine.extend_cfg(cfg)
    node = cfg.TRAINER.DVP_CLS
    node.V_PER_DATASET.update(entries)
    return node


def test_dvp_cls_v_is_the_loaders_and_a_disagreeing_legacy_entry_is_an_error():
    node = _dvp_node()
    assert dataset_v(node, "eurosat") == 1 and dataset_v(node, "food101") == 2
    assert dataset_v(node, "I") == 3  # ImageNet and its variants share the key
    assert dataset_v(node, "digits") == node.V_DEFAULT  # the loader states no v
    assert dataset_v(_dvp_node(eurosat=1), "eurosat") == 1  # the shipped yamls' entries agree
    with pytest.raises(ValueError, match=r"V_PER_DATASET.eurosat is 4.*TRAINER.DVP_CLS.V 4"):
        dataset_v(_dvp_node(eurosat=4), "eurosat")


def test_public_datasets_and_their_sources_are_the_registered_loaders():
    assert datasets.NAMES[:3] == ("caltech101", "dtd", "eurosat") and len(datasets.NAMES) == 18
    assert datasets.NAMES[-2:] == ("fashion_mnist", "mnist")  # built from local IDX files by datasets.download
    assert "digits" not in datasets.NAMES  # built locally, nothing to download
    assert set(sources.SOURCES) == set(datasets.NAMES)
    for cls in datasets.LOADERS:
        assert cls.source.name == cls.config_name and cls.source.folder == cls.dataset_dir
    with pytest.raises(ValueError, match="do you mean dtd"):
        catalog.find_loader("dtdd")


def test_sweep_all_leaves_out_test_only_datasets(monkeypatch):
    monkeypatch.chdir(REPO)
    names = jobs.trainable_datasets()
    test_only = [p.stem for p in (REPO / "configs" / "datasets").glob("imagenet*.yaml") if p.stem != "imagenet"]
    assert len(test_only) == 4 and not set(test_only) & set(names)
    assert {"imagenet", "dtd", "digits", "digits_tinted", "imagefolder"} <= set(names)
    rows = catalogue.load_datasets(os.path.join(REPO, "runs", "datasets.json"))
    assert {n for n, r in rows.items() if r.test_only} == {"ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"}


def test_a_missing_dataset_catalogue_is_one_error_naming_the_fix(tmp_path, monkeypatch, capsys):
    from tests.script_helpers import load_script

    monkeypatch.setenv("VR_DATASET_CATALOGUE", str(tmp_path / "mine.json"))
    (tmp_path / "out").mkdir()
    assert load_script("make_table").main([str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"error: no dataset catalogue {tmp_path / 'mine.json'}" in err and "python -m runs.catalogue" in err
    monkeypatch.chdir(REPO)
    with pytest.raises(jobs.UsageError, match="no dataset catalogue"):
        jobs.trainable_datasets()
