"""What data a run used, as content hashes (docs/data-identity.md): the bottom-layer helpers that the
loaders (datasets/), results.json / run.json (engine/results.py, trainers/) and the sweep's done check
(runs/data_check.py) share. Stdlib only, so the torch-free runner can import it.

Every hash is a sha256 hex digest of text built from paths *relative to the dataset folder*, so the
same data under another data root has the same identity:

- :func:`items_sha256`: a list of images (Datum or ``(impath, label, ...)``) as sorted
  ``<relpath>\\t<label>`` lines (order does not matter, labels do).
- :func:`split_sha256`: the train / val / test lists of a split, each as :func:`items_sha256`.
- :func:`classnames_sha256`: the class names in label order.
- :func:`dataset_identity`: the flat ``data_identity`` dict of a loaded dataset.
"""
import contextlib
import hashlib
import json
import os

IDENTITY_KEY = "data_identity"
SOURCES_KEY = "data_sources"
# the keys of a data identity that differ between the seeds of one setting by design (each seed draws its own
# few-shot sample): tables compare the others (results/identity.py)
PER_SEED_KEYS = frozenset({"fewshot_sha256"})


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path, chunk=1 << 20):
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def relative(path, base):
    """``path`` relative to ``base`` with '/' separators (how identities name images)."""
    return os.path.relpath(path, base).replace(os.sep, "/") if base else path.replace(os.sep, "/")


def _path_label(item):
    if isinstance(item, (tuple, list)):
        return item[0], int(item[1])
    return item.impath, int(item.label)


def items_sha256(items, base):
    """Hash of the (image relative to ``base``, label) pairs of ``items``, in any order."""
    lines = sorted(f"{relative(p, base)}\t{y}" for p, y in map(_path_label, items))
    return sha256_text("\n".join(lines))


def split_sha256(parts, base):
    """Hash of a split: its ``(train, val, test)`` lists, each as :func:`items_sha256`."""
    return sha256_text("\n".join(items_sha256(items or [], base) for items in parts))


def classnames_sha256(names):
    return sha256_text(json.dumps(list(names)))


def dataset_folder(dataset):
    """The folder image paths are made relative to: the loader's dataset_dir, else the images' common folder."""
    folder = getattr(dataset, "dataset_dir", "")
    if folder and os.path.isabs(folder):
        return folder
    paths = [d.impath for part in (dataset.train_x, dataset.val or [], dataset.test) for d in part[:1000]]
    return os.path.commonpath(paths) if paths else ""


def dataset_identity(dataset):
    """The flat ``data_identity`` dict (strings and ints) of a loaded Dassl DatasetBase.

    ``split_sha256`` is the loader's hash of the whole split before the few-shot step (CoOpDataset sets
    ``dataset.split_sha256``), else the hash of the val and test lists the dataset holds (its training list is
    already the few-shot draw, a per-seed fact that ``fewshot_sha256`` holds); ``fewshot_sha256`` is the
    hash of the training images actually used (the few-shot draw, after the base/new subset); the
    counts and class names are those the run trains and tests on.
    """
    cached = getattr(dataset, "_data_identity", None)
    if cached is not None:
        return dict(cached)
    base = dataset_folder(dataset)
    parts = (dataset.train_x, dataset.val or [], dataset.test)
    lab2cname = dataset.lab2cname
    identity = {
        "split_sha256": getattr(dataset, "split_sha256", None) or split_sha256(((),) + parts[1:], base),
        "fewshot_sha256": items_sha256(dataset.train_x, base),
        "num_classes": int(dataset.num_classes),
        "num_train": len(dataset.train_x),
        "num_val": len(dataset.val or []),
        "num_test": len(dataset.test),
        "classnames_sha256": classnames_sha256(lab2cname[y] for y in sorted(lab2cname)),
    }
    with contextlib.suppress(AttributeError):  # a dataset class with __slots__ keeps no copy
        dataset._data_identity = identity
    return dict(identity)


def duplicate_classnames(lab2cname):
    """Groups of labels whose class names are equal or differ only in case (CLIP's tokenizer lower-cases
    text, so their text prompts are the same): ``[(name, [labels])]``."""
    groups = {}
    for label in sorted(lab2cname):
        groups.setdefault(str(lab2cname[label]).strip().lower(), []).append(label)
    return [(lab2cname[labels[0]], labels) for labels in groups.values() if len(labels) > 1]


def duplicate_classnames_warning(lab2cname):
    """The warning line for :func:`duplicate_classnames`, or None."""
    dups = duplicate_classnames(lab2cname)
    if not dups:
        return None
    shown = "; ".join(" / ".join(f"{lab2cname[y]!r} (label {y})" for y in labels) for _, labels in dups[:5])
    more = f"; ... ({len(dups) - 5} more)" if len(dups) > 5 else ""
    return (f"Warning: {len(dups)} group(s) of classes share a name (or differ only in case, which CLIP's "
            f"tokenizer does not see): {shown}{more}. Their text prompts are identical; per-class results are "
            f"keyed by label.")


def folder_listing_sha256(folder, ignored=(), suffixes=()):
    """Hash of the names of the files one level inside the sub-folders of ``folder`` (hidden ones and
    ``ignored`` sub-folders left out; only names ending in ``suffixes``, any case, when given: the files the
    loader reads): a cheap check that no image was added or removed (not decoded)."""
    suffixes = tuple(s.lower() for s in suffixes)
    lines = []
    for sub in sorted(os.listdir(folder)):
        path = os.path.join(folder, sub)
        if sub.startswith(".") or sub in ignored or not os.path.isdir(path):
            continue
        lines += [f"{sub}/{name}" for name in sorted(os.listdir(path))
                  if not name.startswith(".") and (not suffixes or name.lower().endswith(suffixes))
                  and os.path.isfile(os.path.join(path, name))]
    return sha256_text("\n".join(lines))


def source_record(role, path, root, **hashes):
    """One ``data_sources`` entry: a file the run's data came from, relative to the data root when inside it."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, root) if root else path
    shown = path if rel.startswith("..") else rel.replace(os.sep, "/")
    return {"role": role, "path": shown, **hashes}
