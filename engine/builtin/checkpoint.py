"""Checkpoints in Dassl's layout: <dir>/<model name>/model.pth.tar-<epoch> and a `checkpoint` pointer."""
from __future__ import annotations

import os.path as osp
import shutil
from collections import OrderedDict
from typing import Any

import torch

from engine.checkpoint_files import model_file
from engine.io import atomic_write_bytes, atomic_write_text

from .utils import mkdir_if_missing


def save_checkpoint(state: dict[str, Any], save_dir: str, is_best: bool = False, remove_module_from_keys: bool = True,
                    model_name: str = "") -> None:
    """Save ``state`` (atomically) and point ``save_dir/checkpoint`` at it."""
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = OrderedDict(
            (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items())
    if not model_name:
        model_name = model_file(state["epoch"])
    fpath = osp.join(save_dir, model_name)
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(fpath, buf.getvalue())
    print(f"Checkpoint saved to {fpath}")
    atomic_write_text(osp.join(save_dir, "checkpoint"), osp.basename(fpath) + "\n")
    if is_best:
        best_fpath = osp.join(osp.dirname(fpath), model_file())
        shutil.copy(fpath, best_fpath)
        print(f'Best checkpoint saved to "{best_fpath}"')


def load_checkpoint(fpath: str) -> dict[str, Any]:
    """Load a checkpoint onto the CPU (project checkpoints hold only tensors, numbers, strings, lists)."""
    if fpath is None:
        raise ValueError("File path is None")
    if not osp.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    return torch.load(fpath, map_location="cpu", weights_only=False)


def resume_from_checkpoint(fdir: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                           scheduler: Any = None) -> int:
    """Load the checkpoint named in ``fdir/checkpoint`` into model/optimizer/scheduler; return its epoch."""
    with open(osp.join(fdir, "checkpoint")) as f:
        model_name = f.readlines()[0].strip("\n")
    fpath = osp.join(fdir, model_name)
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and "scheduler" in checkpoint:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def load_pretrained_weights(model: torch.nn.Module, weight_path: str) -> None:
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint)
    model_dict = model.state_dict()
    matched = OrderedDict()
    for k, v in state_dict.items():
        k = k[7:] if k.startswith("module.") else k
        if k in model_dict and model_dict[k].size() == v.size():
            matched[k] = v
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    print(f"Loaded {len(matched)} of {len(model_dict)} tensors from {weight_path}")
