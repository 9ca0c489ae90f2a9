"""The few-shot step every loader shares: load CoOp's cache, or sample and write it.

Use from any loader (CoOp-style or not)::

    from datasets.fewshot_cache import fewshot_train_val
    train, val = fewshot_train_val(self.dataset_dir, train, val, cfg, self.generate_fewshot_dataset)

- ``cfg.DATASET.NUM_SHOTS < 1``: returns ``train, val`` unchanged and touches nothing on disk.
- Else the cache is ``<dataset_dir>/split_fewshot/shot_{K}-seed_{cfg.SEED}.pkl`` (CoOp's name), a
  pickle of ``{"train": [Datum], "val": [Datum]}`` (``{"train": ...}`` only with ``with_val=False``, as
  ImageNet, whose val is its test). When it exists it is loaded; otherwise ``generate_fn(train,
  num_shots=K)`` and ``generate_fn(val, num_shots=min(K, 4))`` sample it (Dassl's sampling with the
  global ``random``, so pass the dataset's own ``generate_fewshot_dataset``) and it is written.
- Reading and writing go through ``engine.load_fewshot_cache`` / ``engine.save_fewshot_cache``: the
  file is written atomically (two runs creating the same cache at once both sample the same images and
  the last rename wins; no run ever reads half a file) and Dassl's pickles load here and back.
- A data root that cannot be written still works: the cache goes to the user cache instead, and is read
  from there later (:mod:`datasets.writable`, said in the log).
- A class with fewer than K training images keeps all of them (Dassl's rule); this is said once.
- The cache records what it was drawn from (``"identity"``: the split's hash and the draw's own hashes,
  engine/data_identity.py). A cache drawn from another split (the split file was replaced, or an
  ImageFolder re-split), one whose images are not the draw it records, and one without a recorded
  identity (written by CoOp or older code: it cannot be checked) is drawn again from the current split and
  overwritten, and the log says so naming both files. Class names come from the current split.
- A cache that lists images that are no longer on disk (data root moved: CoOp stores absolute paths)
  is an error that says which file to delete.
"""
import os

from engine.data_identity import items_sha256, split_sha256

from .errors import find_missing, missing_images_error
from .writable import existing_path, write_beside_data

_REPORTED_SHORTFALLS = set()


def fewshot_cache_relpath(num_shots, seed):
    """CoOp's cache file name for K shots and a seed, inside the dataset folder."""
    return os.path.join("split_fewshot", f"shot_{num_shots}-seed_{seed}.pkl")



def read_cache(path, with_val=True):
    """Read one cache file and check its keys (not yet its images)."""
    from engine import load_fewshot_cache

    try:
        data = load_fewshot_cache(path)
    except Exception as err:
        raise ValueError(f"Few-shot cache {path} cannot be read ({type(err).__name__}: {err}); delete it and "
                         f"it is created again.") from None
    needed = ("train", "val") if with_val else ("train",)
    if not isinstance(data, dict) or any(k not in data for k in needed):
        raise ValueError(f"Few-shot cache {path} must hold a dict with keys {list(needed)}; delete it and it "
                         f"is created again.")
    return data


def check_cache_images(data, path, with_val=True):
    """A cache whose images are gone (made under another data root) is an error naming what to delete."""
    items = [d for k in (("train", "val") if with_val else ("train",)) for d in data[k]]
    missing = find_missing([d.impath for d in items])
    if missing:
        raise missing_images_error(
            missing, len(items), f"few-shot cache {path}",
            hint=f"The cache stores absolute paths; it was probably made under another data root. Delete "
                 f"{os.path.dirname(path)} and it is created again.",
        )


def load_cache(path, with_val=True):
    """Load and check one cache file (keys, and that the images it names exist)."""
    data = read_cache(path, with_val)
    check_cache_images(data, path, with_val)
    return data


def draw_identity(data, dataset_dir, split_hash):
    """The ``"identity"`` a cache records: the split it was drawn from and its own train (and val) draw."""
    identity = {"split_sha256": split_hash, "train_sha256": items_sha256(data["train"], dataset_dir)}
    if "val" in data:
        identity["val_sha256"] = items_sha256(data["val"], dataset_dir)
    return identity


def stale_reason(data, dataset_dir, split_hash, split_source, path, with_val=True):
    """Why a cache cannot be used with the current split, or None when it was drawn from it (a cache of
    this split whose images are gone, made under another data root, is the error that says so)."""
    recorded = data.get("identity")
    if not isinstance(recorded, dict) or "split_sha256" not in recorded:
        return (f"records no identity of the split it was drawn from (written by CoOp or older code), so it "
                f"cannot be checked against {split_source}")
    if recorded["split_sha256"] != split_hash:
        return f"was drawn from another split than {split_source} (the split changed since)"
    check_cache_images(data, path, with_val)
    if draw_identity({k: data[k] for k in ("train", "val") if k in data}, dataset_dir, split_hash) != \
            {k: recorded.get(k) for k in ("split_sha256", "train_sha256", "val_sha256") if k in recorded}:
        return "does not hold the images it records (edited or corrupt)"
    return None


def with_current_names(items, names):
    """``items`` with the class names of the current split (a renamed ImageFolder class, an edited names
    file): the cache keeps images and labels; names always come from the split."""
    from engine import Datum

    if all(names.get(d.label, d.classname) == d.classname for d in items):
        return items
    return [Datum(impath=d.impath, label=d.label, domain=d.domain, classname=names.get(d.label, d.classname))
            for d in items]


def report_shortfall(items, num_shots, key):
    """Say once per (dataset, K) that classes with fewer than K images keep all of them."""
    counts, names = {}, {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
        names[item.label] = item.classname
    short = sorted(label for label, n in counts.items() if n < num_shots)
    if not short or key in _REPORTED_SHORTFALLS:
        return short
    _REPORTED_SHORTFALLS.add(key)
    listed = ", ".join(f"{names[y]} ({counts[y]})" for y in short[:5])
    more = f", ... ({len(short) - 5} more)" if len(short) > 5 else ""
    print(f"Note: NUM_SHOTS={num_shots}, but {len(short)} of {len(counts)} classes have fewer training images: "
          f"{listed}{more}. They keep all their images (Dassl's rule; no image is repeated).")
    return short


def fewshot_train_val(dataset_dir, train, val, cfg, generate_fn, with_val=True, split_hash=None,
                      split_source="", sources=None):
    """Return the few-shot ``(train, val)`` for ``cfg`` (see the module docstring).

    ``split_hash``: the hash of the whole split (engine.data_identity.split_sha256; default: of ``train``
    and ``val``), which a cache must record; ``split_source`` names the split in messages; ``sources``, a
    list, gets ``("fewshot", path, identity)`` of the cache used."""
    from engine import save_fewshot_cache

    num_shots = cfg.DATASET.NUM_SHOTS
    if num_shots < 1:
        return train, val
    if split_hash is None:
        split_hash = split_sha256((train, val, []), dataset_dir)
    split_source = split_source or f"the split of {dataset_dir}"
    relpath = fewshot_cache_relpath(num_shots, cfg.SEED)
    path = existing_path(dataset_dir, relpath, "few-shot cache")
    data = None
    if os.path.exists(path):
        print(f"Loading preprocessed few-shot data from {path}")
        data = read_cache(path, with_val)
        why = stale_reason(data, dataset_dir, split_hash, split_source, path, with_val)
        if why:
            print(f"Note: few-shot cache {path} {why}; drawing it again from {split_source} and overwriting it.")
            data = None
        else:
            names = {d.label: d.classname for d in train}
            train = with_current_names(data["train"], names)
            if with_val:
                val = with_current_names(data["val"], names)
    if data is None:
        train = generate_fn(train, num_shots=num_shots)
        data = {"train": train}
        if with_val:
            val = generate_fn(val, num_shots=min(num_shots, 4))
            data["val"] = val
        data["identity"] = draw_identity(data, dataset_dir, split_hash)
        print(f"Saving preprocessed few-shot data to {path}")
        path = write_beside_data(dataset_dir, relpath, lambda p: save_fewshot_cache(p, data), "few-shot cache")
    if sources is not None:
        sources.append(("fewshot", path, dict(data["identity"])))
    report_shortfall(train, num_shots, (os.path.abspath(dataset_dir), num_shots))
    return train, val
