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
- A cache that lists images that are no longer on disk (data root moved: CoOp stores absolute paths)
  is an error that says which file to delete.
"""
import os

from .errors import find_missing, missing_images_error
from .writable import existing_path, write_beside_data

_REPORTED_SHORTFALLS = set()


def fewshot_cache_relpath(num_shots, seed):
    """CoOp's cache file name for K shots and a seed, inside the dataset folder."""
    return os.path.join("split_fewshot", f"shot_{num_shots}-seed_{seed}.pkl")



def load_cache(path, with_val=True):
    """Load and check one cache file (keys, and that the images it names exist)."""
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
    items = [d for k in needed for d in data[k]]
    missing = find_missing([d.impath for d in items])
    if missing:
        raise missing_images_error(
            missing, len(items), f"few-shot cache {path}",
            hint=f"The cache stores absolute paths; it was probably made under another data root. Delete "
                 f"{os.path.dirname(path)} and it is created again.",
        )
    return data


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


def fewshot_train_val(dataset_dir, train, val, cfg, generate_fn, with_val=True):
    """Return the few-shot ``(train, val)`` for ``cfg`` (see the module docstring)."""
    from engine import save_fewshot_cache

    num_shots = cfg.DATASET.NUM_SHOTS
    if num_shots < 1:
        return train, val
    relpath = fewshot_cache_relpath(num_shots, cfg.SEED)
    path = existing_path(dataset_dir, relpath, "few-shot cache")
    if os.path.exists(path):
        print(f"Loading preprocessed few-shot data from {path}")
        data = load_cache(path, with_val)
        train = data["train"]
        if with_val:
            val = data["val"]
    else:
        train = generate_fn(train, num_shots=num_shots)
        data = {"train": train}
        if with_val:
            val = generate_fn(val, num_shots=min(num_shots, 4))
            data["val"] = val
        print(f"Saving preprocessed few-shot data to {path}")
        write_beside_data(dataset_dir, relpath, lambda p: save_fewshot_cache(p, data), "few-shot cache")
    report_shortfall(train, num_shots, (os.path.abspath(dataset_dir), num_shots))
    return train, val
