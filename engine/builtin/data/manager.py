"""DataManager, DatasetWrapper and build_data_loader, as in Dassl."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from tabulate import tabulate
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import Compose, ToTensor

from engine import distributed
from engine.imageio import read_image  # noqa: F401  (Dassl's name; the project's one reader)

from .datasets import build_dataset
from .samplers import build_sampler
from .transforms import INTERPOLATION_MODES, build_transform

if TYPE_CHECKING:
    from yacs.config import CfgNode

    from .datasets import Datum


def build_data_loader(cfg: CfgNode, sampler_type: str = "SequentialSampler", data_source: Sequence[Datum] | None = None,
                      batch_size: int = 64, n_domain: int = 0, n_ins: int = 2, tfm: Callable | None = None,
                      is_train: bool = True, dataset_wrapper: Callable | None = None,
                      drop_last: bool | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader over ``data_source``; training drops the last partial batch (Dassl's rule) unless
    ``drop_last`` says otherwise."""
    sampler = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
                            n_domain=n_domain, n_ins=n_ins)
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper
    if drop_last is None:
        drop_last = is_train and len(data_source) >= batch_size
    if distributed.is_distributed():
        return distributed.sharded_loader(cfg, dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
                                          sampler, batch_size, is_train, drop_last)
    loader = torch.utils.data.DataLoader(
        dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        drop_last=drop_last,
        pin_memory=(torch.cuda.is_available() and cfg.USE_CUDA),
        persistent_workers=False,
    )
    assert len(loader) > 0
    return loader


class DataManager:
    """Builds the dataset named by DATASET.NAME and its train_x / train_u / val / test loaders."""

    def __init__(self, cfg: CfgNode, custom_tfm_train: Callable | None = None, custom_tfm_test: Callable | None = None,
                 dataset_wrapper: Callable | None = None):
        dataset = build_dataset(cfg)
        tfm_train = build_transform(cfg, is_train=True) if custom_tfm_train is None else custom_tfm_train
        tfm_test = build_transform(cfg, is_train=False) if custom_tfm_test is None else custom_tfm_test

        self.train_loader_x = build_data_loader(
            cfg, sampler_type=cfg.DATALOADER.TRAIN_X.SAMPLER, data_source=dataset.train_x,
            batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE, n_domain=cfg.DATALOADER.TRAIN_X.N_DOMAIN,
            n_ins=cfg.DATALOADER.TRAIN_X.N_INS, tfm=tfm_train, is_train=True, dataset_wrapper=dataset_wrapper)
        self.train_loader_u = None
        if dataset.train_u:
            u = cfg.DATALOADER.TRAIN_U
            sampler_type, batch_size, n_domain, n_ins = u.SAMPLER, u.BATCH_SIZE, u.N_DOMAIN, u.N_INS
            if u.SAME_AS_X:
                x = cfg.DATALOADER.TRAIN_X
                sampler_type, batch_size, n_domain, n_ins = x.SAMPLER, x.BATCH_SIZE, x.N_DOMAIN, x.N_INS
            self.train_loader_u = build_data_loader(
                cfg, sampler_type=sampler_type, data_source=dataset.train_u, batch_size=batch_size,
                n_domain=n_domain, n_ins=n_ins, tfm=tfm_train, is_train=True, dataset_wrapper=dataset_wrapper)
        self.val_loader = None
        if dataset.val:
            self.val_loader = build_data_loader(
                cfg, sampler_type=cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.val,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=tfm_test, is_train=False,
                dataset_wrapper=dataset_wrapper)
        self.test_loader = build_data_loader(
            cfg, sampler_type=cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.test,
            batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=tfm_test, is_train=False,
            dataset_wrapper=dataset_wrapper)

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.tfm_train = tfm_train
        self.tfm_test = tfm_test
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self) -> dict[int, str]:
        return self._lab2cname

    def show_dataset_summary(self, cfg: CfgNode) -> None:
        rows = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            rows.append(["Source", cfg.DATASET.SOURCE_DOMAINS])
        if cfg.DATASET.TARGET_DOMAINS:
            rows.append(["Target", cfg.DATASET.TARGET_DOMAINS])
        rows.append(["# classes", f"{self.num_classes:,}"])
        rows.append(["# train_x", f"{len(self.dataset.train_x):,}"])
        if self.dataset.train_u:
            rows.append(["# train_u", f"{len(self.dataset.train_u):,}"])
        if self.dataset.val:
            rows.append(["# val", f"{len(self.dataset.val):,}"])
        rows.append(["# test", f"{len(self.dataset.test):,}"])
        print(tabulate(rows))


class DatasetWrapper(TorchDataset):
    """Turns a list of Datum into batch dicts: img, label, domain, impath, index (and img0 if asked)."""

    def __init__(self, cfg: CfgNode, data_source: Sequence[Datum],
                 transform: Callable | Sequence[Callable] | None = None, is_train: bool = False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"Cannot augment the image {self.k_tfm} times because transform is None")
        interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        from torchvision.transforms import Normalize, Resize
        to_tensor = [Resize(tuple(cfg.INPUT.SIZE), interpolation=interp), ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = Compose(to_tensor)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        img0 = read_image(item.impath)
        if self.transform is not None:
            if isinstance(self.transform, (list, tuple)):
                for i, tfm in enumerate(self.transform):
                    img = self._transform_image(tfm, img0)
                    keyname = "img" if i == 0 else f"img{i + 1}"
                    output[keyname] = img
            else:
                output["img"] = self._transform_image(self.transform, img0)
        else:
            output["img"] = img0
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _transform_image(self, tfm: Callable, img0: Any) -> Any:
        img_list = [tfm(img0) for _ in range(self.k_tfm)]
        return img_list[0] if len(img_list) == 1 else img_list
