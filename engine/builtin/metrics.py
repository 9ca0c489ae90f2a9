"""compute_accuracy, as Dassl's."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def compute_accuracy(output: torch.Tensor | tuple | list, target: torch.Tensor,
                     topk: tuple[int, ...] = (1,)) -> list[torch.Tensor]:
    """Top-k accuracies (percent) of ``output`` logits against ``target`` labels."""
    maxk = max(topk)
    batch_size = target.size(0)
    if isinstance(output, (tuple, list)):
        output = output[0]
    _, pred = output.topk(maxk, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    res = []
    for k in topk:
        correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
        res.append(correct_k.mul_(100.0 / batch_size))
    return res
