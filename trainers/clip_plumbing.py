"""CLIP plumbing the trainer families share (the VR trainers of trainers/base.py, CoOp and its variants
of trainers/coop.py, the feature baselines of trainers/features.py): loading the backbone, checking and
running a precision choice, and the per-epoch test curve (TEST.PER_EPOCH).

Each family keeps its own precision keys and choices (VR: PRECISION fp16 | bf16 | fp32; CoOp: PREC
fp16 | fp32 | amp); what they mean on a device is decided here once.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from engine import distributed
from engine.io import atomic_write_json

if TYPE_CHECKING:
    from yacs.config import CfgNode

    from backbones import ClipBackbone
    from backbones.classifiers import ClassifierBackbone

PER_EPOCH_FILE = "per_epoch_test.json"
AUTOCAST_DTYPES = {"fp16": torch.float16, "amp": torch.float16, "bf16": torch.bfloat16}
CUDA_ONLY = ("fp16", "amp")  # fp16 autocast needs CUDA: fp32 elsewhere (bf16 autocast runs on the CPU too)


def load_backbone(cfg: CfgNode, device: torch.device,
                  trainer: object | None = None) -> ClipBackbone | ClassifierBackbone:
    """The CLIP or classifier of cfg.MODEL.BACKBONE (backbones.load_clip / backbones.classifiers), announced
    first: missing weights fail early; a classifier for a ``trainer`` that needs text fails before that."""
    from backbones import load_clip
    from backbones.classifiers import is_classifier, load_classifier

    from .backbone_kind import check_backbone_kind

    backbone = cfg.MODEL.BACKBONE
    if trainer is not None:
        check_backbone_kind(type(trainer), cfg)
    if is_classifier(backbone.NAME):
        print(f"Loading classifier (backbone: {backbone.NAME})")
        loaded = load_classifier(backbone.NAME, device, weights=backbone.WEIGHTS, pretrained=backbone.PRETRAINED)
        print(f"Classifier {loaded.architecture}: weights {loaded.weights or 'random (PRETRAINED False)'}, "
              f"{len(loaded.classnames)} source classes, input normalised with mean {loaded.mean} std {loaded.std}")
        return loaded
    print(f"Loading CLIP (backbone: {backbone.NAME})")
    return load_clip(backbone.NAME, device, weights=backbone.WEIGHTS, pretrained=backbone.PRETRAINED)


def check_precision(value: str, choices: Sequence[str], key: str) -> None:
    """An unknown precision choice: an error naming the key and the choices."""
    if value not in choices:
        raise ValueError(f'Unknown precision "{value}" ({key}). Use one of: {", ".join(choices)}.')


def precision_used(precision: str, device: torch.device) -> str:
    """The precision as run on ``device``: fp16 autocast (fp16, amp) becomes fp32 without CUDA."""
    return "fp32" if precision in CUDA_ONLY and device.type != "cuda" else precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of a precision as run (fp32: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def scaled_update(trainer: Any, loss: torch.Tensor) -> None:
    """The optimiser step of a CLIP-prompt trainer: through its GradScaler (CUDA fp16) when it has one, else
    Dassl's ``model_backward_and_update``."""
    if trainer.scaler is None:
        trainer.model_backward_and_update(loss)
        return
    trainer.detect_anomaly(loss)
    trainer.optim.zero_grad()
    trainer.scaler.scale(loss).backward()
    trainer.scaler.step(trainer.optim)
    trainer.scaler.update()


class PerEpochTestCurve:
    """TEST.PER_EPOCH: the test accuracy after every epoch, kept in ``per_epoch_test`` (results.json) and
    in OUTPUT_DIR/per_epoch_test.json; a resumed run keeps the entries of the epochs it has done.
    Selected on the test set (the references' protocol), so never the headline number."""

    @property
    def per_epoch_test(self) -> list[float]:
        """The curve's accuracies in epoch order (read from its records; empty before training)."""
        return [r["accuracy"] for r in getattr(self, "_per_epoch_records", [])]

    def resume_test_curve(self) -> None:
        """In before_train: the curve so far (empty, or the done epochs' entries when resuming)."""
        self._per_epoch_records = []
        path = os.path.join(self.output_dir, PER_EPOCH_FILE)
        if self.cfg.TEST.get("PER_EPOCH", False) and self.start_epoch > 0 and os.path.isfile(path):
            with open(path) as f:
                self._per_epoch_records = [r for r in json.load(f) if r["epoch"] <= self.start_epoch]

    def extend_test_curve(self) -> None:
        """In after_epoch: test and add the accuracy (when TEST.PER_EPOCH is on and testing is not off)."""
        if not self.cfg.TEST.get("PER_EPOCH", False) or self.cfg.TEST.NO_TEST:
            return
        acc = float(self.test())
        self._per_epoch_records.append({"epoch": self.epoch + 1, "accuracy": acc})
        if distributed.is_main_process():  # one writer per run
            atomic_write_json(os.path.join(self.output_dir, PER_EPOCH_FILE), self._per_epoch_records)
