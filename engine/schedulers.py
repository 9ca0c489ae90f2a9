"""LR schedulers that work on both backends.

Real Dassl 0.6.3's warm-up schedulers pass `verbose` to torch's LRScheduler, which torch 2.14 rejects, so a
trainer that must run on Dassl too builds its scheduler here: the builtin implementation of Dassl's
``build_lr_scheduler`` (same names and semantics, plain torch code) and the reference VR protocol's
per-iteration cosine.
"""
import torch

from .builtin.optim import build_lr_scheduler


def per_iteration_cosine(optimizer, total_iters):
    """Cosine annealing stepped once per iteration, T_max = epochs * iterations per epoch."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(total_iters)))


__all__ = ["build_lr_scheduler", "per_iteration_cosine"]
