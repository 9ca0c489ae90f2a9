"""The loading flow CoOp repeats in every dataset file, written once.

A loader is a short subclass of :class:`CoOpDataset` that declares where its files are and, where CoOp
has one, how to create the split when the split file is missing::

    @DATASET_REGISTRY.register()
    class DescribableTextures(CoOpDataset):
        dataset_dir = "dtd"                                   # folder under DATASET.ROOT
        image_folder = "images"                               # split paths are relative to it
        split_file = "split_zhou_DescribableTextures.json"
        config_name, descriptions_key = "dtd", "dtd"
        layout = "dtd/\\n  images/<class>/*.jpg\\n  split_zhou_DescribableTextures.json\\n"

        def create_splits(self, rng):
            return read_and_split_data(self.image_dir, rng)   # -> train, val, test entries

Construction (``Loader(cfg)``) then does, as CoOp: check the layout (a missing folder names the layout
and the download command) -> read the split file, or create it with ``create_splits`` and save it ->
check that every image exists -> hash the split (engine/data_identity.py) -> few-shot step with CoOp's
cache, which must record that hash (:mod:`datasets.fewshot_cache`) -> base/new subsampling
(:mod:`datasets.subsample`) -> ``DatasetBase.__init__`` -> warn about class names that collide.
The loaded dataset carries ``split_sha256`` and ``data_sources`` (the files its data came from, with
their hashes: what the sweep's done check compares, runs/data_check.py); :meth:`split_files` names them.
Loaders with their own split format override :meth:`read_splits` (FGVCAircraft) or
:meth:`load_splits` (ImageNet).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine import DatasetBase
from engine.data_identity import duplicate_classnames_warning, sha256_file, source_record, split_sha256

from .errors import missing_layout_error
from .fewshot_cache import fewshot_train_val
from .splits import SPLITS, image_list_record, read_split, save_split, split_rng, to_datums
from .subsample import subsample_classes
from .writable import existing_path, write_beside_data

if TYPE_CHECKING:
    import random

    from yacs.config import CfgNode

    from engine.builtin.data.datasets import Datum


def data_root(cfg: CfgNode) -> str:
    """DATASET.ROOT as an absolute path (CoOp: abspath(expanduser(ROOT)))."""
    return os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))


class CoOpDataset(DatasetBase):
    """Base of the CoOp-style loaders (see the module docstring)."""

    dataset_dir = ""  # folder under DATASET.ROOT
    image_folder = ""  # folder inside dataset_dir that split paths are relative to ("" = dataset_dir)
    split_file = ""  # split json inside dataset_dir ("" = the dataset has its own split format)
    config_name = ""  # configs/datasets/<config_name>.yaml; NAME for datasets.download / datasets.check
    descriptions_key = ""  # <key> of the published description files (<key>_des.json, ...)
    layout = ""  # the expected layout under DATASET.ROOT, shown when something is missing
    fewshot_val = True  # sample a few-shot val set too (ImageNet: False, its val is its test)

    def __init__(self, cfg: CfgNode):
        self.set_paths(data_root(cfg))
        self.configure(cfg)
        self.check_layout()
        train, val, test = self.load_splits()
        self.split_sha256 = split_sha256((train, val, test), self.dataset_dir)
        found = []
        train, val = fewshot_train_val(self.dataset_dir, train, val, cfg, self.generate_fewshot_dataset,
                                       with_val=self.fewshot_val, split_hash=self.split_sha256,
                                       split_source=self.split_source(), sources=found)
        train, val, test = self.finalize(train, val, test, cfg)
        super().__init__(train_x=train, val=val, test=test)
        self.data_sources = self.source_records(found)
        self.warn_duplicate_names()

    def warn_duplicate_names(self) -> None:
        """Once per run (the dataset is built once): classes whose names collide for CLIP."""
        warning = duplicate_classnames_warning(self.lab2cname)
        if warning:
            print(warning)

    def split_files(self) -> list[str]:
        """The files the split was read from (hashed into ``data_sources``); loaders without a split json
        name theirs (FGVCAircraft's lists, ImageNet's classnames.txt)."""
        return [self.split_path] if self.split_path and os.path.isfile(self.split_path) else []

    def source_records(self, found: Iterable[tuple[str, str, dict[str, Any]]] = ()) -> list[dict[str, Any]]:
        """``data_sources``: the dataset folder, each split file with its sha256, the few-shot cache used."""
        records = [source_record("dataset_dir", self.dataset_dir, self.root)]
        records += [source_record("split", path, self.root, sha256=sha256_file(path)) for path in self.split_files()]
        records += [source_record(role, path, self.root, **hashes) for role, path, hashes in found]
        return records

    # -- paths ------------------------------------------------------------------------------------------
    def set_paths(self, root: str) -> None:
        """Set root, dataset_dir, image_dir, split_path and split_fewshot_dir for data root ``root``."""
        folder = type(self).dataset_dir
        self.root = root
        self.dataset_dir = os.path.join(root, folder)
        self.image_dir = os.path.join(self.dataset_dir, self.image_folder) if self.image_folder else self.dataset_dir
        self.split_path = os.path.join(self.dataset_dir, self.split_file) if self.split_file else ""
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")

    def configure(self, cfg: CfgNode) -> None:
        """Hook for loaders that read more of the config before loading (ImageFolder)."""

    @classmethod
    def locate(cls, root: str) -> CoOpDataset:
        """An unloaded instance with its paths set: for inspecting a data root (datasets.check)."""
        obj = cls.__new__(cls)
        obj.set_paths(os.path.abspath(os.path.expanduser(root)))
        return obj

    def missing(self, what: str, path: str) -> Exception:
        """The error for a missing folder or file of this dataset (layout + download command)."""
        return missing_layout_error(what, path, self.config_name, self.root, self.layout)

    def check_layout(self) -> None:
        """Fail early, with the expected layout, when the dataset or its image folder is missing."""
        if not os.path.isdir(self.dataset_dir):
            raise self.missing(f"{type(self).__name__} dataset folder", self.dataset_dir)
        if not os.path.isdir(self.image_dir):
            raise self.missing(f"{type(self).__name__} image folder", self.image_dir)

    def require_file(self, relpath: str) -> str:
        """Absolute path of a file the layout needs, or the missing-layout error."""
        path = os.path.join(self.dataset_dir, relpath)
        if not os.path.isfile(path):
            raise self.missing(f"{type(self).__name__} file {relpath}", path)
        return path

    # -- splits -----------------------------------------------------------------------------------------
    def read_splits(self) -> dict[str, list[tuple[str, int, str]]] | None:
        """The listed splits as ``{"train"|"val"|"test": [entry]}``, or None when there is no split file."""
        if self.split_path and os.path.exists(self.split_path):
            return read_split(self.split_path, self.image_dir)
        return None

    def split_source(self) -> str:
        """What the splits are read from (named in errors)."""
        return f"split file {self.split_path}"

    def create_splits(self, rng: random.Random) -> tuple[list, list, list]:
        """CoOp's fallback when the split file is missing: return (train, val, test) entry lists."""
        raise self.missing(f"{type(self).__name__} split file", self.split_path)

    def load_splits(self) -> tuple[list[Datum], list[Datum], list[Datum]]:
        """Read the split file, or create and save it; return (train, val, test) lists of Datum."""
        if self.split_path:
            self.split_path = existing_path(self.dataset_dir, os.path.relpath(self.split_path, self.dataset_dir),
                                            "split file")
        splits = self.read_splits()
        if splits is None:
            train, val, test = self.create_splits(split_rng())
            self.split_path = write_beside_data(
                self.dataset_dir, os.path.relpath(self.split_path, self.dataset_dir),
                lambda path: save_split(train, val, test, path, self.image_dir,
                                        made_from=image_list_record(train + val + test, self.image_dir)),
                "split file")
            splits = {"train": train, "val": val, "test": test}
        source = self.split_source()
        return tuple(to_datums(splits[name], source) for name in SPLITS)

    def finalize(self, train: list[Datum], val: list[Datum], test: list[Datum],
                 cfg: CfgNode) -> tuple[list[Datum], list[Datum], list[Datum]]:
        """Last step before DatasetBase: CoOp's base/new class subsampling."""
        return subsample_classes(train, val, test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
