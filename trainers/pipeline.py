"""The VR data pipeline and its speed options, each exact (same images, so the same losses for a seed).

* ``DATALOADER.CACHE_TRAIN`` (default on): the training images are decoded and put through the
  deterministic head of the train transform (``Resize(input_size)``) once, in parallel threads, and kept
  in memory as uint8 arrays; every epoch still runs the random tail (RandomResizedCrop, flip, ToTensor)
  on them. The reference decodes every full-size image again in every epoch.
* ``DATALOADER.CACHE_TEST`` (default off): the same for the test set, whose whole pipeline before
  ToTensor is deterministic (Resize, CenterCrop); worth it when testing after every epoch.
* ``DATALOADER.AUGMENT_SEED`` ``per_sample`` (default): the random crop and flip of sample i in epoch e
  are drawn from a generator seeded by (run seed, e, i), and the sample order of epoch e from one seeded
  by (run seed, e); so both are the same for any NUM_WORKERS, any number of processes (torchrun), with
  or without the caches and per-epoch testing, and after a resume. ``global``: Dassl's behaviour (the
  process-wide torch RNG, which every DataLoader pass also draws from; results then depend on
  NUM_WORKERS and on TEST.PER_EPOCH).

A set larger than ``DATALOADER.CACHE_MAX_MB`` (estimated before decoding) is read from disk as usual.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

from engine import DatasetWrapper, build_sampler, distributed, read_image
from engine.extend import register_config

if TYPE_CHECKING:
    from yacs.config import CfgNode

    from engine.builtin.data.datasets import Datum

AUGMENT_SEEDS = ("per_sample", "global")
DETERMINISTIC = (T.Resize, T.CenterCrop)  # transforms whose output depends on the image only


@register_config
def _pipeline_keys(cfg: CfgNode) -> None:
    cfg.DATALOADER.CACHE_TRAIN = True  # VR trainers: decoded + resized training images kept in memory (exact)
    cfg.DATALOADER.CACHE_TEST = False  # VR trainers: preprocessed test images kept in memory (exact)
    cfg.DATALOADER.CACHE_MAX_MB = 4096  # a set whose cache would be larger is read from disk
    cfg.DATALOADER.AUGMENT_SEED = "per_sample"  # per_sample | global (see trainers/pipeline.py)


def check_pipeline_cfg(cfg: CfgNode) -> None:
    mode = cfg.DATALOADER.get("AUGMENT_SEED", "global")
    if mode not in AUGMENT_SEEDS:
        raise ValueError(f'Unknown DATALOADER.AUGMENT_SEED "{mode}". Use one of: {", ".join(AUGMENT_SEEDS)}.')
    if cfg.DATALOADER.get("CACHE_MAX_MB", 0) < 0:
        raise ValueError("DATALOADER.CACHE_MAX_MB must be >= 0 (0 disables caching).")


def split_transform(tfm: Callable | None) -> tuple[T.Compose, T.Compose]:
    """(deterministic head, the rest) of a Compose; the head may be empty (identity)."""
    steps = list(tfm.transforms) if isinstance(tfm, T.Compose) else ([tfm] if tfm is not None else [])
    n = 0
    while n < len(steps) and isinstance(steps[n], DETERMINISTIC):
        n += 1
    return T.Compose(steps[:n]), T.Compose(steps[n:])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 1_000_003 + int(index)) % (2 ** 63 - 1)


def _output_side(head: T.Compose) -> int | None:
    """Side length the head's last Resize/CenterCrop produces (None if the head is empty)."""
    side = None
    for step in head.transforms:
        size = step.size
        side = size if isinstance(size, int) else max(size)
    return side


def estimate_cache_mb(data_source: Sequence[Datum], head: T.Compose, probe: int = 32) -> float:
    """Memory the cache of ``data_source`` would take, from the headers of a few images (no decoding)."""
    side = _output_side(head)
    if side is None or not data_source:
        return 0.0
    if any(isinstance(s, T.CenterCrop) for s in head.transforms):
        per_image = side * side * 3
    else:  # Resize(int): the short side becomes ``side``
        step = max(1, len(data_source) // probe)
        ratios = []
        for item in data_source[::step][:probe]:
            try:
                with Image.open(item.impath) as im:
                    w, h = im.size
            except OSError:
                continue
            ratios.append(max(w, h) / max(1, min(w, h)))
        per_image = side * side * 3 * (float(np.mean(ratios)) if ratios else 1.5)
    return len(data_source) * per_image / 2 ** 20


class ImageCache:
    """The head's output for every image, as uint8 arrays (shared with forked loader workers)."""

    def __init__(self, paths: Sequence[str], head: T.Compose, threads: int | None = None):
        threads = threads or min(8, os.cpu_count() or 1)

        def load(path: str) -> np.ndarray:
            return np.asarray(head(read_image(path)), dtype=np.uint8)

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # PIL decodes without the GIL
            self.arrays = list(pool.map(load, paths))
        self.nbytes = int(sum(a.nbytes for a in self.arrays))

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> Image.Image:
        return Image.fromarray(self.arrays[i])


class VRDatasetWrapper(DatasetWrapper):
    """Dassl's batch dicts (img, label, domain, impath, index) from the VR transforms, with the optional
    image cache and per-sample augmentation seeds. ``set_epoch`` must be called before each epoch (before
    the loader's iterator is made; workers, also persistent ones, read it from shared memory)."""

    def __init__(self, cfg: CfgNode, data_source: Sequence[Datum], transform: Callable | None = None,
                 is_train: bool = False, cache: bool = False, seed: int | None = None, what: str = "images",
                 lazy_cache: bool = False):
        super().__init__(cfg, data_source, transform=transform, is_train=is_train)
        self.head, self.tail = split_transform(transform)
        self.seed = seed  # None: process-wide RNG
        # in shared memory, so that persistent loader workers see the epoch the trainer sets
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()
        self.cache = None
        # lazy_cache: built at the first set_epoch (or first read in the main process), so that a run that never
        # reads the set (--eval-only, zero-shot) does not decode it
        self._pending_cache = (float(cfg.DATALOADER.get("CACHE_MAX_MB", 4096)), what) if cache and data_source \
            else None
        if not lazy_cache:
            self.ensure_cache()

    def ensure_cache(self) -> None:
        """Decode the set into memory now, if asked and within DATALOADER.CACHE_MAX_MB (once)."""
        if self._pending_cache is None:
            return
        (limit, what), self._pending_cache = self._pending_cache, None
        need = estimate_cache_mb(self.data_source, self.head)
        if need > limit:
            print(f"Note: caching the {len(self.data_source):,} {what} would take about {need:,.0f} MB > "
                  f"DATALOADER.CACHE_MAX_MB = {limit:,.0f}; they are read from disk every epoch.")
        else:
            self.cache = ImageCache([item.impath for item in self.data_source], self.head)
            print(f"Cached {len(self.cache):,} decoded {what} in memory ({self.cache.nbytes / 2 ** 20:,.1f} MB)")

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self.ensure_cache()  # in the main process, before the epoch's loader workers start
        self._epoch[0] = int(epoch)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if self._pending_cache is not None and torch.utils.data.get_worker_info() is None:
            self.ensure_cache()  # read without set_epoch, in this process: cache now (a worker reads from disk)
        item = self.data_source[idx]
        img = self.cache[idx] if self.cache is not None else self.head(read_image(item.impath))
        if self.seed is None:
            out = self.tail(img)
        else:  # torchvision draws from the CPU generator; seed it for this sample, then restore it
            gen = torch.default_generator
            state = gen.get_state()
            gen.manual_seed(sample_seed(self.seed, self.epoch, idx))  # (torch.manual_seed: 100x slower)
            try:
                out = self.tail(img)
            finally:
                gen.set_state(state)
        return {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx, "img": out}


def augment_seed(cfg: CfgNode, fallback: int) -> int | None:
    """Base seed of the per-sample augmentation (None in 'global' mode): SEED, else ``fallback``."""
    if cfg.DATALOADER.get("AUGMENT_SEED", "global") != "per_sample":
        return None
    return int(cfg.SEED) if cfg.SEED >= 0 else int(fallback)


def unsaved_randomness(loader: DataLoader) -> str | None:
    """Why a training loader's draws cannot be continued from a checkpoint, or None: persistent workers that
    augment from the process-wide generators (AUGMENT_SEED global) keep random streams of their own."""
    workers = int(getattr(loader, "num_workers", 0) or 0)
    if workers and getattr(loader, "persistent_workers", False) and getattr(loader.dataset, "seed", 0) is None:
        return (f"with DATALOADER.AUGMENT_SEED global its {workers} persistent loader workers keep random "
                f"streams of their own, which no checkpoint holds; AUGMENT_SEED per_sample resumes exactly")
    return None


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell a loader's dataset and sampler which epoch they serve (per-sample seeds, seeded order)."""
    for part in ("dataset", "sampler", "batch_sampler"):
        setter = getattr(getattr(loader, part, None), "set_epoch", None)
        if callable(setter):
            setter(epoch)


def cache_bytes(loader: DataLoader) -> int:
    cache = getattr(getattr(loader, "dataset", None), "cache", None)
    return 0 if cache is None else cache.nbytes


# What Dassl's build_data_loader sets on a trainer (trainers that build their own loaders copy them).
DATA_MANAGER_ATTRIBUTES = ("train_loader_x", "train_loader_u", "val_loader", "test_loader", "num_classes",
                           "num_source_domains", "lab2cname")


def vr_transforms(size: int) -> tuple[T.Compose, T.Compose]:
    """The reference's pipelines; both end at ToTensor (no normalisation: the prompt does it)."""
    bicubic = T.InterpolationMode.BICUBIC
    train = T.Compose([T.Resize(size, interpolation=bicubic), T.RandomResizedCrop(size, interpolation=bicubic),
                       T.RandomHorizontalFlip(), T.ToTensor()])
    test = T.Compose([T.Resize(size, interpolation=bicubic), T.CenterCrop(size), T.ToTensor()])
    return train, test


def full_pass_loader(cfg: CfgNode, data_source: Sequence[Datum], tfm: Callable, seed: int | None = None,
                     batch_size: int | None = None) -> DataLoader:
    """Training loader WITHOUT drop_last: every sample is seen (and counted by the PRM) every epoch.

    The images go through VRDatasetWrapper (cache, per-sample augmentation seeds: ``seed``); in a
    multi-process run this process gets its part of every global batch (engine/distributed.py).
    ``batch_size``: the (global) training batch, DATALOADER.TRAIN_X.BATCH_SIZE when None.
    """
    x = cfg.DATALOADER.TRAIN_X
    batch_size = int(x.BATCH_SIZE if batch_size is None else batch_size)
    sampler = build_sampler(x.SAMPLER, cfg=cfg, data_source=data_source, batch_size=batch_size,
                            n_domain=x.N_DOMAIN, n_ins=x.N_INS)
    dataset = VRDatasetWrapper(cfg, data_source, transform=tfm, is_train=True,
                               cache=cfg.DATALOADER.get("CACHE_TRAIN", False), seed=seed, what="training images",
                               lazy_cache=True)  # decoded when training starts: never in an --eval-only run
    if seed is not None and not distributed.is_distributed():  # the order a multi-process run uses too
        sampler = distributed.SeededOrderSampler(sampler, seed)
    if distributed.is_distributed():
        return distributed.sharded_loader(cfg, dataset, sampler, batch_size, is_train=True, drop_last=False,
                                          persistent_workers=True)
    workers = cfg.DATALOADER.NUM_WORKERS
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=False,
                      pin_memory=torch.cuda.is_available() and cfg.USE_CUDA,
                      persistent_workers=workers > 0)  # no new worker processes every epoch


def eval_dataset_wrapper(cfg: CfgNode, data_source: Sequence[Datum], transform: Callable | None = None,
                         is_train: bool = False) -> VRDatasetWrapper:
    """Dataset wrapper of the val/test loaders (the DataManager's train_x loader is replaced)."""
    cache = (not is_train) and cfg.DATALOADER.get("CACHE_TEST", False)
    return VRDatasetWrapper(cfg, data_source, transform=transform, is_train=is_train, cache=cache,
                            what="evaluation images")
