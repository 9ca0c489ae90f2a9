"""Few-shot caches: CoOp's file names and contents, Dassl's sampling, compatibility with Dassl's pickles,
parallel creation, and the NUM_SHOTS-above-class-size rule."""
import multiprocessing as mp
import os
import random
import subprocess
import sys
import textwrap
from collections import defaultdict

import pytest

from tests.concurrency import run_at_once
from tests.dataset_helpers import load, make_cfg, relpaths
from tests.dataset_miniatures import build

DASSL_DATUM = textwrap.dedent("""\
    class Datum:
        def __init__(self, impath="", label=0, domain=0, classname=""):
            self._impath, self._label, self._domain, self._classname = impath, label, domain, classname
        impath = property(lambda self: self._impath)
        label = property(lambda self: self._label)
        domain = property(lambda self: self._domain)
        classname = property(lambda self: self._classname)
""")


def fake_dassl(tmp_path):
    """A stand-in for the `dassl` package holding Dassl's Datum (same module path and attributes)."""
    base = tmp_path / "fake_dassl"
    pkg = base / "dassl" / "data" / "datasets"
    pkg.mkdir(parents=True)
    for folder in (base / "dassl", base / "dassl" / "data", pkg):
        (folder / "__init__.py").write_text("")
    (pkg / "base_dataset.py").write_text(DASSL_DATUM)
    return str(base)


def dassl_sample(items, k):
    """Dassl's generate_fewshot_dataset, written out: labels in order of first appearance."""
    groups = defaultdict(list)
    for d in items:
        groups[d.label].append(d)
    out = []
    for group in groups.values():
        out += random.sample(group, k) if len(group) >= k else group
    return out


def test_cache_file_name_contents_and_reuse(tmp_path, capsys):
    from engine import load_fewshot_cache, set_random_seed

    build("ucf101", tmp_path)
    full = load(tmp_path, "UCF101")
    set_random_seed(1)
    expected_train = dassl_sample(full.train_x, 2)
    expected_val = dassl_sample(full.val, 1)

    set_random_seed(1)
    ds = load(tmp_path, "UCF101", NUM_SHOTS=2)
    path = tmp_path / "ucf101" / "split_fewshot" / "shot_2-seed_1.pkl"
    assert "Saving preprocessed few-shot data to" in capsys.readouterr().out
    assert relpaths(ds.train_x, tmp_path) == relpaths(expected_train, tmp_path)
    assert relpaths(ds.val, tmp_path) == relpaths(expected_val, tmp_path)
    cache = load_fewshot_cache(str(path))
    assert sorted(cache) == ["identity", "train", "val"]  # identity: the split it was drawn from, and the draw
    assert cache["identity"]["split_sha256"] == ds.split_sha256
    assert relpaths(cache["train"], tmp_path) == relpaths(ds.train_x, tmp_path)
    assert all(os.path.isabs(d.impath) for d in cache["train"])

    again = load(tmp_path, "UCF101", NUM_SHOTS=2)  # another seed state: the cache decides
    assert "Loading preprocessed few-shot data from" in capsys.readouterr().out
    assert relpaths(again.train_x, tmp_path) == relpaths(ds.train_x, tmp_path)
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]


def test_imagenet_cache_holds_train_only(tmp_path):
    from engine import load_fewshot_cache

    build("imagenet", tmp_path)
    ds = load(tmp_path, "ImageNet", NUM_SHOTS=1)
    cache = load_fewshot_cache(str(tmp_path / "imagenet" / "split_fewshot" / "shot_1-seed_1.pkl"))
    assert list(cache) == ["train", "identity"] and len(cache["train"]) == 4
    assert len(ds.train_x) == 4 and len(ds.test) == 8 and len(ds.val) == 8


def test_dassl_written_cache_is_read(tmp_path, capsys):
    """A cache pickled by Dassl (class path dassl.data.datasets.base_dataset.Datum) loads here; it records no
    split it was drawn from, so it is drawn again (said) rather than trusted (issue 19)."""
    import json

    from engine import Datum

    build("dtd", tmp_path)
    full = load(tmp_path, "DescribableTextures")
    chosen = {"train": full.train_x[::2], "val": full.val[:2]}
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({k: [[d.impath, d.label, d.classname] for d in v] for k, v in chosen.items()}))
    path = tmp_path / "dtd" / "split_fewshot" / "shot_3-seed_1.pkl"
    path.parent.mkdir()
    code = ("import json, pickle, sys; from dassl.data.datasets.base_dataset import Datum; "
            "rows = json.load(open(sys.argv[1])); "
            "data = {k: [Datum(p, y, 0, c) for p, y, c in v] for k, v in rows.items()}; "
            "pickle.dump(data, open(sys.argv[2], 'wb'), protocol=pickle.HIGHEST_PROTOCOL)")
    out = subprocess.run([sys.executable, "-c", code, str(rows), str(path)], cwd=str(tmp_path), capture_output=True,
                         text=True, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": fake_dassl(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert b"dassl.data.datasets.base_dataset" in path.read_bytes()
    from datasets.fewshot_cache import read_cache

    cached = read_cache(str(path))
    assert all(isinstance(d, Datum) for d in cached["train"] + cached["val"])
    assert relpaths(cached["train"], tmp_path) == relpaths(chosen["train"], tmp_path)
    capsys.readouterr()
    ds = load(tmp_path, "DescribableTextures", NUM_SHOTS=3)
    assert "records no identity of the split it was drawn from (written by CoOp or older code)" in \
        capsys.readouterr().out
    assert relpaths(ds.train_x, tmp_path) == relpaths(full.train_x, tmp_path)  # 2 per class: K=3 keeps all
    assert read_cache(str(path))["identity"]["split_sha256"] == ds.split_sha256


def test_cache_is_readable_by_dassl(tmp_path):
    """The cache written here unpickles in a process that has Dassl but not this repository."""
    build("dtd", tmp_path)
    ds = load(tmp_path, "DescribableTextures", NUM_SHOTS=2)
    path = tmp_path / "dtd" / "split_fewshot" / "shot_2-seed_1.pkl"
    code = ("import pickle, sys; d = pickle.load(open(sys.argv[1], 'rb')); t = d['train'][0]; "
            "print(type(t).__module__, len(d['train']), len(d['val']), t.impath, t.label, t.classname)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=str(tmp_path), capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": fake_dassl(tmp_path)})
    assert out.returncode == 0, out.stderr
    first = ds.train_x[0]
    assert out.stdout.split() == ["dassl.data.datasets.base_dataset", "6", "3", first.impath, str(first.label),
                                  first.classname]


def test_stale_cache_says_which_folder_to_delete(tmp_path):
    mini = build("eurosat", tmp_path)
    load(tmp_path, "EuroSAT", NUM_SHOTS=1)
    os.rename(mini.dataset_dir, str(tmp_path / "moved"))
    os.makedirs(tmp_path / "new")
    os.rename(str(tmp_path / "moved"), str(tmp_path / "new" / "eurosat"))
    with pytest.raises(FileNotFoundError, match=r"made under another data root\. Delete .*split_fewshot"):
        load(tmp_path / "new", "EuroSAT", NUM_SHOTS=1)


def test_more_shots_than_images_keeps_all_and_says_so_once(tmp_path, capsys):
    build("resisc45", tmp_path)  # 2 train images per class
    ds = load(tmp_path, "Resisc45", NUM_SHOTS=4)
    again = load(tmp_path, "Resisc45", NUM_SHOTS=4)
    out = capsys.readouterr().out
    assert len(ds.train_x) == len(again.train_x) == 6  # all 2 images of each of 3 classes, none repeated
    assert len({d.impath for d in ds.train_x}) == 6
    assert out.count("NUM_SHOTS=4, but 3 of 3 classes have fewer training images") == 1
    assert "keep all their images" in out


# ---- two processes on one data root -----------------------------------------------------------------

def _build_in_process(root):
    import contextlib
    import io

    from engine import build_dataset, set_random_seed

    cfg = make_cfg(root, "OxfordPets", NUM_SHOTS=3)
    set_random_seed(cfg.SEED)
    with contextlib.redirect_stdout(io.StringIO()):
        ds = build_dataset(cfg)
    return [(d.impath, d.label) for d in ds.train_x + ds.val]


def test_two_processes_create_the_same_split_and_cache_at_once(tmp_path):
    mini = build("oxford_pets", tmp_path, split_file=False)  # both create the split, then the cache
    import datasets  # noqa: F401  (imported before fork: the children start at once)

    results = run_at_once(_build_in_process, (str(tmp_path),))
    assert results[0] == results[1]
    from engine import load_fewshot_cache

    cache = load_fewshot_cache(os.path.join(mini.dataset_dir, "split_fewshot", "shot_3-seed_1.pkl"))
    assert [(d.impath, d.label) for d in cache["train"] + cache["val"]] == results[0]
    leftovers = [f for d in (mini.dataset_dir, os.path.join(mini.dataset_dir, "split_fewshot"))
                 for f in os.listdir(d) if f.endswith(".tmp")]
    assert not leftovers


def _rewrite_cache(path, data, stop):
    from engine import save_fewshot_cache

    while not stop.is_set():
        save_fewshot_cache(path, data)


def test_readers_never_see_a_half_written_cache(tmp_path):
    """One process rewrites the cache in a loop while this one loads the dataset from it."""
    build("dtd", tmp_path)
    ds = load(tmp_path, "DescribableTextures", NUM_SHOTS=2)
    path = str(tmp_path / "dtd" / "split_fewshot" / "shot_2-seed_1.pkl")
    from datasets.fewshot_cache import draw_identity

    data = {"train": ds.train_x * 200, "val": ds.val}  # a larger file, so a torn read would show
    data["identity"] = draw_identity(data, str(tmp_path / "dtd"), ds.split_sha256)
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    writer = ctx.Process(target=_rewrite_cache, args=(path, data, stop))
    writer.start()
    try:
        for _ in range(30):
            again = load(tmp_path, "DescribableTextures", NUM_SHOTS=2)
            assert len(again.train_x) in (len(ds.train_x), 200 * len(ds.train_x))
    finally:
        stop.set()
        writer.join(timeout=30)


def test_a_hostile_cache_pickle_is_refused_before_it_runs(tmp_path):
    """A pickle can run code when loaded (``__reduce__`` -> os.system): the cache loader resolves only the
    classes a cache holds, so the command never runs and the error names the file, the class and the fix."""
    import pickle

    from datasets.fewshot_cache import load_cache

    marker = tmp_path / "marker"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "shot_1-seed_1.pkl"
    path.write_bytes(pickle.dumps({"train": [Hostile()], "val": []}))
    with pytest.raises(ValueError) as err:
        load_cache(str(path))
    msg = str(err.value)
    assert f"Few-shot cache {path} cannot be read" in msg and "system" in msg and "delete it" in msg
    assert not marker.exists()
