"""Small helpers with Dassl's names: json, folders, seeding, meters."""
from __future__ import annotations

import json
import os
import os.path as osp
import random
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


def mkdir_if_missing(dirname: str) -> None:
    if dirname and not osp.exists(dirname):
        os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath: str) -> bool:
    isfile = osp.isfile(fpath)
    if not isfile:
        print(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath) as f:
        return json.load(f)


def write_json(obj: Any, fpath: str) -> None:
    """Write ``obj`` as indented json; atomic, since split files are shared by parallel runs."""
    from engine.io import atomic_write_text

    mkdir_if_missing(osp.dirname(fpath))
    atomic_write_text(fpath, json.dumps(obj, indent=4, separators=(",", ": ")))


def listdir_nohidden(path: str, sort: bool = False) -> list[str]:
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def set_random_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def count_num_param(model: torch.nn.Module | None = None, params: Iterable[torch.Tensor] | None = None) -> int:
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in params)


def collect_env_info() -> str:
    import platform

    import torchvision

    lines = [
        f"Python: {platform.python_version()} ({platform.platform()})",
        f"PyTorch: {torch.__version__}",
        f"Torchvision: {torchvision.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return "\n".join(lines)


class AverageMeter:
    """Running value and average of one scalar."""

    def __init__(self, ema: bool = False):
        self.ema = ema
        self.reset()

    def reset(self) -> None:
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val: float | torch.Tensor, n: int = 1) -> None:
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        if self.ema:
            self.avg = self.avg * 0.9 + self.val * 0.1
        else:
            self.avg = self.sum / self.count


class MetricMeter:
    """A dict of AverageMeters printed as ``name val (avg)``."""

    def __init__(self, delimiter: str = " "):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: dict[str, float | torch.Tensor] | None) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError("Input to MetricMeter.update() must be a dictionary")
        for k, v in input_dict.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            self.meters[k].update(v)

    def __str__(self) -> str:
        return self.delimiter.join(f"{name} {meter.val:.4f} ({meter.avg:.4f})" for name, meter in self.meters.items())
