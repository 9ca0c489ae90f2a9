"""Split files and CoOp's rules for creating a split when the file is missing.

Shared by every loader (and usable by new ones):

- An *entry* is a tuple ``(abs_image_path, label, classname)``. Splits are handled as entries until the
  last step, because Dassl's ``Datum`` refuses a missing image with a bare assertion; checking the
  entries first gives one clear error with the first few missing paths and their count.
- :func:`read_split` / :func:`save_split`: CoOp's ``split_zhou_<Name>.json`` format,
  ``{"train"|"val"|"test": [[relpath, label, classname], ...]}`` with paths relative to an image folder.
  Saving is atomic (temporary file + rename), so parallel runs never read half a split. A split this
  toolkit creates also records ``"made_from"``: the identity of the image list it was made from
  (:func:`image_list_record`; CoOp's readers ignore the extra key), so a loader that can list its images
  again (ImageFolder) notices images added or removed since (:func:`images_changed`).
- :func:`read_and_split_data` (one folder per class, CoOp's 50/20/30 split per class, with ignored
  folders and renames), :func:`split_trainval` (CoOp's per-class 80/20 train/val split) and
  :func:`split_groups` (the per-class split behind both).
- :func:`split_rng`: the generator the fallback rules draw from. CoOp shuffles with the global
  ``random`` (seeded by the run's seed), so the first run's seed decides the split and two parallel runs
  with different seeds would create different splits at once. Here the split comes from a private
  ``random.Random(SPLIT_SEED)``: every run creates the same split, and the global ``random`` that
  few-shot sampling uses is left untouched.
- :func:`to_datums`: entries -> Datum after checking that every image exists.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import SplitFileError, find_missing, missing_images_error

if TYPE_CHECKING:
    from engine.builtin.data.datasets import Datum

SPLIT_SEED = 1  # seeds the fallback split rules (see the module docstring)
SPLITS = ("train", "val", "test")


def split_rng(seed: int = SPLIT_SEED) -> random.Random:
    """A private random generator for creating splits."""
    return random.Random(seed)


def _fields(item):
    """(impath, label, classname) of a Datum or an entry tuple."""
    if isinstance(item, (tuple, list)):
        impath, label, classname = item
        return impath, int(label), classname
    return item.impath, int(item.label), item.classname


def relative_to(path: str, prefix: str) -> str:
    """``path`` relative to folder ``prefix`` (CoOp strips the prefix and a leading slash)."""
    rel = os.path.relpath(path, prefix)
    if rel.startswith(".."):
        raise ValueError(f"{path} is not inside {prefix}; split files store paths relative to it")
    return rel.replace(os.sep, "/")


def _path(item):
    return item[0] if isinstance(item, (tuple, list)) else item.impath


def image_list_record(entries: Iterable[Any], path_prefix: str) -> dict[str, Any]:
    """``{"images_sha256", "num_images"}`` of the images a split is made from (paths relative to
    ``path_prefix``, labels ignored: the list of files, in any order)."""
    from engine.data_identity import sha256_text

    rels = sorted(relative_to(_path(e), path_prefix) for e in entries)
    return {"images_sha256": sha256_text("\n".join(rels)), "num_images": len(rels)}


def recorded_image_list(filepath: str) -> dict[str, Any] | None:
    """The ``"made_from"`` record of a split file, or None (CoOp's files, older splits of this toolkit)."""
    try:
        with open(filepath) as f:
            record = json.load(f).get("made_from")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) and "images_sha256" in record else None


def images_changed(filepath: str, listed: Sequence[str], path_prefix: str) -> str | None:
    """Why the images ``listed`` now (entries) are not those the split file was made from, or None (also
    when the split records no image list)."""
    record = recorded_image_list(filepath)
    if record is None or image_list_record(listed, path_prefix) == record:
        return None
    with open(filepath) as f:
        split = json.load(f)
    in_split = {row[0] for name in SPLITS for row in split[name]}
    now = {relative_to(_path(e), path_prefix) for e in listed}
    added, removed = sorted(now - in_split), sorted(in_split - now)

    def show(paths):
        return ", ".join(paths[:3]) + (f", ... ({len(paths) - 3} more)" if len(paths) > 3 else "")

    parts = ([f"{len(added)} added ({show(added)})"] if added else []) + \
            ([f"{len(removed)} removed ({show(removed)})"] if removed else [])
    return (f"the images in {path_prefix} changed since {filepath} was made from them ("
            f"{record['num_images']} then, {len(now)} now: {'; '.join(parts) or 'other files'})")


def save_split(train: Sequence[Any], val: Sequence[Any], test: Sequence[Any], filepath: str, path_prefix: str,
               made_from: dict[str, Any] | None = None) -> None:
    """Write CoOp's split json (paths relative to ``path_prefix``) atomically; items: Datum or entries.
    ``made_from``: the :func:`image_list_record` of the images it was made from (recorded beside)."""
    from engine.io import atomic_write_text

    split = {}
    for name, items in zip(SPLITS, (train, val, test), strict=False):
        rows = []
        for item in items:
            impath, label, classname = _fields(item)
            rows.append([relative_to(impath, path_prefix), label, classname])
        split[name] = rows
    if made_from is not None:
        split["made_from"] = made_from
    atomic_write_text(filepath, json.dumps(split, indent=4, separators=(",", ": ")))
    print(f"Saved split to {filepath}")


def read_split(filepath: str, path_prefix: str) -> dict[str, list[tuple[str, int, str]]]:
    """Read a CoOp split json -> ``{"train"|"val"|"test": [entry, ...]}`` with absolute paths."""
    print(f"Reading split from {filepath}")
    try:
        with open(filepath) as f:
            split = json.load(f)
    except json.JSONDecodeError as err:
        raise SplitFileError(
            f"Split file {filepath} is not valid json ({err}); delete it to recreate it (where the dataset "
            f"has a fallback split) or download it again."
        ) from None
    if not isinstance(split, dict) or any(k not in split for k in SPLITS):
        raise SplitFileError(f"Split file {filepath} must be a json object with keys {list(SPLITS)}.")
    out = {}
    for name in SPLITS:
        entries = []
        for row in split[name]:
            if not isinstance(row, (list, tuple)) or len(row) != 3:
                raise SplitFileError(
                    f"Split file {filepath}: each '{name}' item must be [relpath, label, classname], got {row!r}"
                )
            relpath, label, classname = row
            entries.append((os.path.join(path_prefix, relpath), int(label), classname))
        out[name] = entries
    return out


def to_datums(entries: Sequence[tuple[str, int, str]], source: str, hint: str = "") -> list[Datum]:
    """Turn entries into Datum objects; a missing image raises one error (first few paths + count)."""
    from engine import Datum

    entries = [_fields(e) for e in entries]
    missing = find_missing([e[0] for e in entries])
    if missing:
        raise missing_images_error(missing, len(entries), source, hint)
    return [Datum(impath=p, label=y, classname=c) for p, y, c in entries]


def split_groups(groups, rng, p_trn=0.5, p_val=0.2, what="class"):
    """CoOp's per-class split: ``groups`` is an ordered ``{label: (classname, [impaths])}``.

    Each class's images are shuffled, then round(n*p_trn) go to train, round(n*p_val) to val and the
    rest to test; every part must be non-empty (CoOp asserts it; here it is a clear error).
    Returns three entry lists.
    """
    train, val, test = [], [], []
    for label, (classname, impaths) in groups.items():
        impaths = list(impaths)
        rng.shuffle(impaths)
        n_total = len(impaths)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if n_train <= 0 or n_val <= 0 or n_test <= 0:
            raise ValueError(
                f"{what} '{classname}' has {n_total} images, too few for a {p_trn:.0%}/{p_val:.0%}/"
                f"{1 - p_trn - p_val:.0%} train/val/test split (each part needs at least one image, i.e. "
                f"at least 4 images); add images or remove the {what}."
            )
        train += [(p, label, classname) for p in impaths[:n_train]]
        val += [(p, label, classname) for p in impaths[n_train:n_train + n_val]]
        test += [(p, label, classname) for p in impaths[n_train + n_val:]]
    return train, val, test


def list_images(folder: str, keep: Callable[[str], bool] | None = None) -> list[str]:
    """Non-hidden files of ``folder`` (those whose name ``keep`` accepts, if given), sorted (CoOp lists in
    file-system order; sorting makes it stable)."""
    return sorted(f for f in os.listdir(folder) if not f.startswith(".") and os.path.isfile(os.path.join(folder, f))
                  and (keep is None or keep(f)))


def class_folders(image_dir: str, ignored: Iterable[str] = (), exclude_files: bool = True) -> list[str]:
    """Sorted class sub-folders of ``image_dir`` (hidden ones and ``ignored`` left out)."""
    names = [n for n in os.listdir(image_dir) if not n.startswith(".") and n not in ignored]
    if exclude_files:
        names = [n for n in names if os.path.isdir(os.path.join(image_dir, n))]
    return sorted(names)


def read_and_split_data(image_dir: str, rng: random.Random, p_trn: float = 0.5, p_val: float = 0.2,
                        ignored: Iterable[str] = (), new_cnames: Mapping[str, str] | None = None,
                        folders: Sequence[str] | None = None, keep: Callable[[str], bool] | None = None) -> tuple:
    """CoOp's fallback for a folder per class: label = rank of the sorted folder name, class name =
    folder name (or ``new_cnames[folder]``), then :func:`split_groups`. Returns three entry lists.
    ``keep(file name)``, if given, chooses the files that are images (ImageFolder: by extension)."""
    new_cnames = new_cnames or {}
    if folders is None:
        folders = class_folders(image_dir, ignored)
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {1 - p_trn - p_val:.0%} test")
    groups = {}
    for label, folder in enumerate(folders):
        category_dir = os.path.join(image_dir, folder)
        impaths = [os.path.join(category_dir, im) for im in list_images(category_dir, keep)]
        groups[label] = (new_cnames.get(folder, folder), impaths)
    return split_groups(groups, rng, p_trn, p_val)


def split_trainval(trainval: Sequence[Any], rng: random.Random, p_val: float = 0.2) -> tuple[list, list]:
    """CoOp's train/val split of a trainval list (entries or Datum): per label, in order of first
    appearance, a shuffled round(n*p_val) go to val and the rest to train."""
    print(f"Splitting trainval into {1 - p_val:.0%} train and {p_val:.0%} val")
    tracker = {}
    for idx, item in enumerate(trainval):
        tracker.setdefault(_fields(item)[1], []).append(idx)
    train, val = [], []
    for _label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            classname = _fields(trainval[idxs[0]])[2]
            raise ValueError(
                f"class '{classname}' has {len(idxs)} trainval images, too few to hold out {p_val:.0%} for "
                f"validation (needs at least 3)."
            )
        rng.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val
