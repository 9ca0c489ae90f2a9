"""Datum, DatasetBase, few-shot sampling (Dassl's algorithm), caches, loaders and registries."""
import os
import pickle
import random
import sys
import types

import pytest
import torch

import engine
from engine import DatasetBase, Datum, Registry, set_random_seed


def _images(tmp_path, n):
    paths = []
    for i in range(n):
        p = tmp_path / f"im{i}.jpg"
        p.write_bytes(b"x")
        paths.append(str(p))
    return paths


def _reference_fewshot(items, num_shots, repeat=False):
    """An independent statement of Dassl's rule: labels in order of first appearance; per label
    random.sample(items, K) if it has K, else all (random.choices with repeat)."""
    order, groups = [], {}
    for it in items:
        if it.label not in groups:
            order.append(it.label)
            groups[it.label] = []
        groups[it.label].append(it)
    out = []
    for label in order:
        g = groups[label]
        if len(g) >= num_shots:
            out += random.sample(g, num_shots)
        elif repeat:
            out += random.choices(g, k=num_shots)
        else:
            out += g
    return out


@pytest.mark.parametrize("repeat", [False, True])
def test_fewshot_sampling_equals_dassl_algorithm(tmp_path, repeat):
    paths = _images(tmp_path, 40)
    # labels first appear in the order 3, 1, 0, 2; label 2 has only 2 items (< K)
    labels = [3, 1, 3, 0, 1, 3, 2, 0, 1, 3, 0, 2] + [3, 1, 0] * 9 + [1]
    items = [Datum(paths[i], lab, 0, f"c{lab}") for i, lab in enumerate(labels)]
    ds = DatasetBase(train_x=items, val=items[:2], test=items[:2])
    set_random_seed(7)
    got = ds.generate_fewshot_dataset(items, num_shots=4, repeat=repeat)
    set_random_seed(7)
    want = _reference_fewshot(items, 4, repeat)
    assert [d.impath for d in got] == [d.impath for d in want]
    assert [d.label for d in got][:4] == [3, 3, 3, 3]
    assert sum(d.label == 2 for d in got) == (4 if repeat else 2)


def test_fewshot_two_sources_and_no_shots(tmp_path):
    paths = _images(tmp_path, 6)
    items = [Datum(p, i % 2, 0, f"c{i % 2}") for i, p in enumerate(paths)]
    ds = DatasetBase(train_x=items, val=items, test=items)
    assert ds.generate_fewshot_dataset(items, num_shots=-1) is items
    a, b = ds.generate_fewshot_dataset(items, items, num_shots=1)
    assert len(a) == len(b) == 2


def test_datum_requires_existing_image(tmp_path):
    # the builtin Datum raises a FileNotFoundError naming the path; real Dassl's asserts
    with pytest.raises(AssertionError if engine.BACKEND == "dassl" else FileNotFoundError):
        Datum(str(tmp_path / "missing.jpg"), 0, 0, "x")
    d = Datum(_images(tmp_path, 1)[0], 1, 0, "cat")
    with pytest.raises(AttributeError):
        d.label = 3


def test_datasetbase_classnames_sorted_by_label(tmp_path):
    paths = _images(tmp_path, 3)
    items = [Datum(paths[0], 2, 0, "two"), Datum(paths[1], 0, 0, "zero"), Datum(paths[2], 1, 0, "one")]
    ds = DatasetBase(train_x=items, test=items)
    assert ds.num_classes == 3 and ds.classnames == ["zero", "one", "two"]
    assert ds.lab2cname == {0: "zero", 1: "one", 2: "two"}


def test_dassl_pickle_loads_with_builtin_backend(tmp_path):
    """A cache written by Dassl names dassl.data.datasets.base_dataset.Datum: it must load here."""
    paths = _images(tmp_path, 2)
    fake_names = ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]
    saved = {n: sys.modules.get(n) for n in fake_names}
    try:
        mods = {n: types.ModuleType(n) for n in fake_names}

        class FakeDatum:  # same attribute layout as Dassl's Datum
            def __init__(self, impath, label, domain, classname):
                self._impath, self._label, self._domain, self._classname = impath, label, domain, classname

        FakeDatum.__module__ = "dassl.data.datasets.base_dataset"
        FakeDatum.__qualname__ = FakeDatum.__name__ = "Datum"
        mods["dassl.data.datasets.base_dataset"].Datum = FakeDatum
        sys.modules.update(mods)
        blob = pickle.dumps({"train": [FakeDatum(paths[0], 1, 0, "cat")], "val": [FakeDatum(paths[1], 0, 0, "dog")]})
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    assert b"dassl.data.datasets.base_dataset" in blob
    cache = tmp_path / "split_fewshot" / "shot_1-seed_1.pkl"
    cache.parent.mkdir()
    cache.write_bytes(blob)
    data = engine.load_fewshot_cache(str(cache))
    assert isinstance(data["train"][0], engine.Datum)
    assert (data["train"][0].impath, data["train"][0].label, data["train"][0].classname) == (paths[0], 1, "cat")


def test_fewshot_cache_round_trip_is_atomic(tmp_path):
    paths = _images(tmp_path, 1)
    path = tmp_path / "c" / "shot_1-seed_1.pkl"
    engine.save_fewshot_cache(str(path), {"train": [Datum(paths[0], 0, 0, "a")], "val": []})
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
    assert engine.load_fewshot_cache(str(path))["train"][0].classname == "a"


def test_registry_rules():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    with pytest.raises(KeyError, match="already registered"):
        reg.register()(type("Alpha", (), {}))
    reg.register(force=True)(type("Alpha", (), {}))
    # the close-match hint is the builtin registry's addition; Dassl's KeyError only names the object
    with pytest.raises(KeyError, match='Did you mean "Alpha"' if engine.BACKEND == "builtin" else "alpah"):
        reg.get("alpah")


def test_build_trainer_unknown_name_has_close_match():
    from engine import get_cfg_default
    cfg = get_cfg_default()
    cfg.TRAINER.NAME = "ToyLinaer"
    import tests.toy_plugin  # noqa: F401
    with pytest.raises(ValueError, match=r"do you mean \[ToyLinear\]"):
        engine.build_trainer(cfg)


def test_datamanager_batches_and_drop_last(toy_root):
    import tests.toy_plugin  # noqa: F401
    from engine import DataManager, get_cfg_default
    cfg = get_cfg_default()
    cfg.DATASET.NAME = "ToyColors"
    cfg.DATASET.ROOT = toy_root
    cfg.INPUT.SIZE = (16, 16)
    cfg.INPUT.TRANSFORMS = ("random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 5
    dm = DataManager(cfg)
    assert dm.num_classes == 4 and dm.lab2cname[2] == "blue"
    n_train = len(dm.dataset.train_x)
    assert len(dm.train_loader_x) == n_train // 5  # Dassl drops the last partial training batch
    batch = next(iter(dm.test_loader))
    assert set(batch) >= {"img", "label", "domain", "impath", "index"}
    assert batch["img"].shape[1:] == torch.Size([3, 16, 16])


def test_corrupt_image_error_names_the_path(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.jpg"):
        engine.read_image(str(bad))
