"""How long a run takes, roughly, and which runs share one SLURM array task (a pack).

Run costs in a comparison differ by orders of magnitude: a zero-shot evaluation takes a minute, a 16-shot
200-epoch prompt a GPU-hour. One task per run wastes the scheduler's time (and the cluster's patience) on
the short ones, so runs estimated shorter than the target task duration are packed, in sweep order,
until a pack reaches it; a run estimated at the target or more gets a task of its own.

The estimate is deliberately simple (seconds on one GPU, ViT-B/16, a dataset of about 100 classes):
``fixed + per_shot_epoch x shots x epochs`` by the trainer's declared cost class (its RUN_COST,
exported as ``run_cost`` to runs/trainers.json), scaled by the backbone. Only the split into packs
depends on it; a pack that runs longer than its task's time limit is requeued (runs/slurm_task.py) and
continues where it stopped, so a wrong estimate costs time, never results.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import layout
from .jobs import config_files, method_info, train_opts

if TYPE_CHECKING:
    from .jobs import Job

# cost class: (fixed seconds, seconds per shot and epoch)
COSTS = {"eval": (120.0, 0.0), "features": (180.0, 0.2), "backprop": (120.0, 1.0)}
# backbone name (as MODEL.BACKBONE.NAME spells it, upper case) -> factor over ViT-B/16
BACKBONE_FACTORS = (("L/14", 4.0), ("L-14", 4.0), ("B/32", 0.5), ("B-32", 0.5), ("RN101", 0.8),
                    ("RN50", 0.6), ("TEST-TINY", 0.01))
DEFAULT_EPOCHS = 10  # when no config file of the run sets OPTIM.MAX_EPOCH


def estimate_seconds(job: Job) -> float:
    """Rough seconds of one run on one GPU (see the module docstring)."""
    config = layout.expected_config(config_files(job), train_opts(job))
    cost = method_info(job.method).run_cost
    fixed, per_shot_epoch = COSTS.get(cost, COSTS["backprop"])
    try:
        epochs = max(1, int(config.get("OPTIM.MAX_EPOCH", DEFAULT_EPOCHS)))
    except (TypeError, ValueError):
        epochs = DEFAULT_EPOCHS
    if not method_info(job.method).trains:
        epochs = 0
    backbone = str(config.get("MODEL.BACKBONE.NAME", "")).upper()
    factor = next((f for key, f in BACKBONE_FACTORS if key in backbone), 1.0)
    return factor * (fixed + per_shot_epoch * max(job.shots, 1) * epochs)


def pack(jobs: Sequence[Job], target_seconds: float,
         estimate: Callable[[Job], float] = estimate_seconds) -> list[list[int]]:
    """Lists of indices into ``jobs``, in order: consecutive runs whose estimates add up to at most
    ``target_seconds`` share a list; ``target_seconds`` <= 0 gives every run a list of its own."""
    packs, current, filled = [], [], 0.0
    for index, job in enumerate(jobs):
        cost = estimate(job) if target_seconds > 0 else float("inf")
        if current and filled + cost > target_seconds:
            packs.append(current)
            current, filled = [], 0.0
        current.append(index)
        filled += cost
    if current:
        packs.append(current)
    return packs
