"""The process-wide random number generators' states, for checkpoints: a resumed run continues with them.

Trainers that draw their sample order and augmentations from the process-wide generators (CoOp's loaders,
as Dassl's) reproduce an uninterrupted run after a resume only when those generators continue where they
were when the checkpoint was written. ``capture`` takes the states (torch CPU, every CUDA device when CUDA
is in use, Python ``random``, NumPy's legacy global generator) as tensors, numbers and lists only, so a
checkpoint stays loadable with ``torch.load(weights_only=True)``; ``restore`` sets them back. DataLoader
workers need nothing of their own: their seeds are drawn from the torch CPU generator when an epoch's
iterator is made. Capturing draws nothing, so an uninterrupted run's trajectory is unchanged.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from . import distributed

CHECKPOINT_KEY = "rng_states"  # a list: one entry per rank of the run that wrote the checkpoint


def capture() -> dict[str, Any]:
    """This process's generator states (nothing is drawn)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    states = {"torch": torch.get_rng_state(), "python": [int(version), list(internal), gauss],
              "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def capture_all_ranks() -> list[dict[str, Any]]:
    """Every rank's states, in rank order (a collective in a multi-process run: call it on every rank)."""
    return distributed.gather_lists([capture()])[0]


def restore(states: dict[str, Any]) -> str:
    """Set this process's generators to ``states``; -> "" or why the CUDA ones could not be set."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"],
                         saved["cached_gaussian"]))
    cuda = states.get("cuda")
    if not cuda:
        return ""
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if here != len(cuda):
        return f"it was written with {len(cuda)} CUDA device(s) and this process has {here}"
    torch.cuda.set_rng_state_all(cuda)
    return ""


def restore_rank(saved: list[dict[str, Any]] | None) -> str:
    """Restore this rank's entry of a checkpoint's ``CHECKPOINT_KEY``; -> "" when the continuation is exact,
    else why it may not be (no states: older code; another number of processes; other CUDA devices)."""
    if not saved:
        return "it holds no random number generator states (written by older code)"
    if len(saved) != distributed.world_size():
        return (f"it was written by a run of {len(saved)} process(es) and this run has {distributed.world_size()}, "
                f"so the generator states were not restored")
    return restore(saved[distributed.rank()])
