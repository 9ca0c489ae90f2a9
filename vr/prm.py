"""PRM: DVP's probabilistic reweighting matrix, estimated by counting (never by gradient).

omega in R^{(C*M') x C} maps the flattened description logits z(x) (B, C*M') to class logits:
``logits = z.flatten(1) @ omega``. Only the own-class block of each column is ever non-zero, so this
module stores the blocks compactly as ``weight`` (C, M'): ``weight[c, j] = omega[c*M' + j, c]`` =
P(description j | class c); ``omega()`` expands it. The forward computes the same product as
``(z * weight).sum(-1)``, which avoids a (C*M') x C matrix (240 MB for ImageNet with 60 texts/class).

Lifecycle (methods.md, "PRM"):
1. start uniform within each class block (1/M': mean aggregation);
2. for every training sample (x, y), in the same forward as the loss, count the top-k entries of
   z(x)[y] (``observe``);
3. at each epoch end, re-estimate: counts row-normalised (a class without samples falls back to
   uniform), counts reset (``end_epoch``);
4. test uses the weights of the last re-estimation.

Precision: by default the product runs in the dtype of z, as the reference's ``fx @ prob_y_s`` under fp16
autocast (omega rounded to fp16, fp16 result); ``precise=True`` promotes it to fp32 instead.

The counts are a plain tensor (``statistics``), so a distributed trainer can all-reduce them before
``end_epoch``; weights and counts are buffers, so they are saved with the model's state_dict.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from .aggregation import Aggregation, register_aggregation

if TYPE_CHECKING:
    from .text import TextTable


@register_aggregation
class PRM(Aggregation):
    kind = "prm"
    CONFIG_KEYS = ("PRM_TOPK", "LOGIT_MATH")
    WEIGHT_KIND = "PRM weight"

    def __init__(self, num_classes: int, num_slots: int, topk: int = 3, precise: bool = False):
        super().__init__()
        self.num_classes, self.num_slots, self.topk = int(num_classes), int(num_slots), int(topk)
        self.precise = bool(precise)
        if self.topk < 1 or self.topk > self.num_slots:
            raise ValueError(
                f"PRM top-k must lie in [1, M'] where M' = {self.num_slots} descriptions per class, got "
                f"k = {topk}. Lower TRAINER.<NAME>.PRM_TOPK or raise TRAINER.<NAME>.M.")
        shape = (self.num_classes, self.num_slots)
        self.register_buffer("weight", torch.full(shape, 1.0 / self.num_slots))
        self.register_buffer("counts", torch.zeros(shape, dtype=torch.long))  # this epoch, so far
        self.register_buffer("last_counts", torch.zeros(shape, dtype=torch.long))  # of the last estimate
        self.register_buffer("epochs_estimated", torch.zeros((), dtype=torch.long))

    @classmethod
    def for_table(cls, table: TextTable, prm_topk: int = 3, logit_math: str = "reference") -> PRM:
        """LOGIT_MATH "precise" runs the product in fp32 (see the module docstring)."""
        return cls(table.num_classes, table.num_slots, topk=prm_topk, precise=logit_math == "precise")

    def check(self, num_classes: int, num_slots: int) -> None:
        if (num_classes, num_slots) != (self.num_classes, self.num_slots):
            raise ValueError(f"PRM built for (C, M') = {(self.num_classes, self.num_slots)} got description "
                             f"logits of shape {(num_classes, num_slots)}.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C) = z.flatten(1) @ omega, computed block-wise (a matmul per class block)."""
        if self.precise:
            return (z * self.weight).sum(dim=-1)  # fp32 weights promote the product to fp32
        weight = self.weight.to(z.dtype)
        return (z.unsqueeze(-2) @ weight.unsqueeze(-1))[..., 0, 0]

    def text_weights(self, num_classes: int, num_slots: int) -> torch.Tensor:
        self.check(num_classes, num_slots)
        return self.weight

    def text_counts(self) -> torch.Tensor:
        return self.last_counts

    @classmethod
    def from_state(cls, state: Mapping[str, Any], prefix: str = "aggregation.") -> PRM:
        """The PRM a model state_dict (e.g. a checkpoint's) holds, rebuilt without the model."""
        if prefix + "weight" not in state:
            raise ValueError(f"The checkpoint holds no PRM ({prefix}weight).")
        prm = cls(*state[prefix + "weight"].shape, topk=1)  # top-k is not part of the state
        prm.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        return prm

    def omega(self) -> torch.Tensor:
        """The full (C*M') x C matrix of the paper (zeros off the own-class blocks)."""
        c, m = self.num_classes, self.num_slots
        full = torch.zeros(c * m, c, dtype=self.weight.dtype, device=self.weight.device)
        rows = torch.arange(c * m, device=full.device)
        full[rows, rows // m] = self.weight.reshape(-1)
        return full

    @torch.no_grad()
    def observe(self, z: torch.Tensor, labels: torch.Tensor):
        """Count the top-k descriptions of the true class of every sample in the batch."""
        own = z[torch.arange(z.shape[0], device=z.device), labels.to(z.device)]  # (B, M')
        top = torch.topk(own.float(), self.topk, dim=-1).indices  # (B, k)
        rows = labels.to(self.counts.device).view(-1, 1).expand_as(top)
        ones = torch.ones(top.shape, dtype=self.counts.dtype, device=self.counts.device)
        self.counts.index_put_((rows, top.to(self.counts.device)), ones, accumulate=True)

    def statistics(self) -> torch.Tensor:
        """This epoch's (C, M') count tensor (the buffer itself: all-reduce it in place)."""
        return self.counts

    @torch.no_grad()
    def add_statistics(self, counts: torch.Tensor):
        """Merge counts gathered elsewhere (another process, a resumed partial epoch)."""
        self.counts += counts.to(self.counts)

    @staticmethod
    def estimate(counts: torch.Tensor) -> torch.Tensor:
        """Row-normalised counts; a class with no counts gets the uniform row."""
        counts = counts.double()
        total = counts.sum(dim=1, keepdim=True)
        uniform = torch.full_like(counts, 1.0 / counts.shape[1])
        weight = torch.where(total > 0, counts / total.clamp_min(1.0), uniform)
        return weight.float()

    @torch.no_grad()
    def end_epoch(self) -> torch.Tensor:
        """Re-estimate the weights from this epoch's counts, then reset the counts. Returns the counts."""
        used = self.counts.clone()
        self.weight.copy_(self.estimate(used))
        self.last_counts.copy_(used)
        self.counts.zero_()
        self.epochs_estimated += 1
        return used

    def contributions(self, prompt_grid: torch.Tensor, num_prompts: int) -> torch.Tensor:
        """(C, v): for each class, the PRM mass on the descriptions scored by each prompt (rows sum to 1)."""
        grid = prompt_grid.to(self.weight.device).long()
        table = torch.zeros(self.num_classes, int(num_prompts), dtype=self.weight.dtype, device=self.weight.device)
        return table.scatter_add_(1, grid, self.weight)
