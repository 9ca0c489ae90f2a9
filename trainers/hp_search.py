"""The hyper-parameter search of the feature baselines (Tip-Adapter's grid, the linear probe's C, LP++'s
blend): top-1 accuracy, the search grid, and what results.json records about where the values were chosen."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

HP_SELECTIONS = ("val", "test", "defaults")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * (logits.argmax(dim=1) == labels).float().mean().item()


def tip_grid(scale: float, steps: int) -> list[float]:
    """Tip-Adapter's search values 0.1 + i (scale - 0.1) / steps, i < steps (the end point is excluded)."""
    return [0.1 + i * (float(scale) - 0.1) / int(steps) for i in range(int(steps))]


def grid_search(score: Callable[[Any], float], grid: Sequence[Any]) -> tuple[Any, float]:
    """The first point of ``grid`` with the highest ``score(point)``: only a strictly better score replaces
    the best, as in Tip-Adapter's search. Returns (best point, best score)."""
    best, best_score = None, -float("inf")
    for point in grid:
        s = score(point)
        if s > best_score:
            best, best_score = point, s
    return best, best_score


def hp_record(selection: str, val_is_test: bool, chosen: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameter facts stored in results.json: where they were chosen, and the values."""
    record = {"hp_selection": selection, **chosen}
    if selection == "test" or (selection == "val" and val_is_test):
        record["test_selected"] = True
        record["test_selected_note"] = ("hyper-parameters chosen on the test images: the accuracy is not a "
                                        "held-out number")
    return record


def check_hp_selection(value: str, key: str) -> None:
    if str(value) not in HP_SELECTIONS:
        raise ValueError(f'Unknown hyper-parameter selection "{value}" ({key}). Use one of: '
                         f"{', '.join(HP_SELECTIONS)} (test = the paper's search on the test set, labelled).")
