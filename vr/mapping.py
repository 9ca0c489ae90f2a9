"""Label mapping: logits over S source texts mapped to C target classes by counting (ILM-VP, BLM, BLM+).

The text table is in the free layout (vr/text.py): S source texts, z (B, S). The mapping omega (S, C)
gives the class logits ``z @ omega``. Like the PRM (vr/prm.py) it is estimated by counting, never by
gradient, with the same lifecycle (``observe`` the logits of training samples, re-estimate in
``end_epoch``), but the counts come from a separate no-grad pass over the training set with the current
prompt before every epoch, epoch 0 included (``STATISTICS = "pass"``), as in the references'
``one2one_mappnig_matrix`` / ``blm_reweight_matrix`` (mapping interval 1).

* ``OneToOneMapping`` (ILM): counts N[s, t] = #{i: y_i = t, argmax_s z_i = s}; greedy one-to-one
  assignment, C times: the largest remaining count (ties: the first in row-major order) maps t to s,
  then row s and column t leave. Class t's logit is z[:, m(t)].
* ``BayesianMapping`` (BLM): the same counts; omega[s, t] = N[s, t] / (sum_t' N[s, t'] + lambda) (Laplace
  smoothing on the row sum only), then each column divided by its sum.
* ``BayesianTopKMapping`` (BLM+): N[s, t] = sum over samples of class t of softmax(z_i)[s], keeping each
  sample's k largest probabilities (the rest zero); then BLM's smoothing and normalisation.

Before the first estimate (an untrained evaluation), class t is mapped to source text ``initial[t]``
(``for_table``: the first text naming the class, i.e. zero-shot CLIP with the first template). In BLM and
BLM+ a class that got no counts in an estimate keeps that initial column (the reference divides by zero
there); ILM's greedy assignment gives every class a source anyway. Counts are kept in float64 (the
references: float32; exact for counts, closer for BLM+'s sums). Only omega is saved with the model; the
counts of the last estimate go into the run's label_map.pt (at S = 81,000 texts for ImageNet they would
add 1.3 GB to every checkpoint).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .aggregation import Aggregation, register_aggregation

if TYPE_CHECKING:
    from .text import TextTable


class LabelMapping(Aggregation):
    """Base: the (S, C) mapping, its counts and the lifecycle. Subclasses define ``statistic`` (what one
    sample adds to the counts of its class) and ``estimate`` (counts -> omega)."""

    LAYOUT = "free"
    STATISTICS = "pass"
    WEIGHT_KIND = "mapping weight"

    def __init__(self, num_sources: int, num_classes: int, initial: Sequence[int]):
        super().__init__()
        self.num_sources, self.num_classes = int(num_sources), int(num_classes)
        if self.num_sources < self.num_classes:
            raise ValueError(f"Label mapping needs at least as many source texts as target classes, got "
                             f"{self.num_sources} source texts for {self.num_classes} classes.")
        initial = torch.as_tensor(list(initial), dtype=torch.long)
        if initial.shape != (self.num_classes,) or initial.min() < 0 or initial.max() >= self.num_sources:
            raise ValueError(f"The initial mapping needs one source index in [0, {self.num_sources}) per class, "
                             f"got {initial.tolist()[:10]}.")
        shape = (self.num_sources, self.num_classes)
        self.register_buffer("initial", initial)
        self.register_buffer("weight", self.one_hot(initial))  # omega (S, C)
        self.register_buffer("counts", torch.zeros(shape, dtype=torch.float64), persistent=False)  # this pass
        self.register_buffer("last_counts", torch.zeros(shape, dtype=torch.float64), persistent=False)
        self.register_buffer("epochs_estimated", torch.zeros((), dtype=torch.long))

    @classmethod
    def for_table(cls, table: TextTable, **settings: Any) -> LabelMapping:
        return cls(len(table), table.num_classes, table.first_entries(), **settings)

    def one_hot(self, mapping: torch.Tensor) -> torch.Tensor:
        """omega (S, C) with a single 1 per column: class t -> source ``mapping[t]``."""
        omega = torch.zeros(self.num_sources, self.num_classes, device=mapping.device)
        omega[mapping, torch.arange(self.num_classes, device=mapping.device)] = 1.0
        return omega

    def check_free(self, num_classes: int, num_texts: int) -> None:
        if (num_texts, num_classes) != (self.num_sources, self.num_classes):
            raise ValueError(f"{type(self).__name__} built for {self.num_sources} source texts and "
                             f"{self.num_classes} classes got a table of {num_texts} texts for {num_classes} classes.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.weight.to(z.dtype)

    def statistic(self, z: torch.Tensor) -> torch.Tensor:
        """(B, S) what each sample adds to the counts of its class."""
        raise NotImplementedError

    def estimate(self, counts: torch.Tensor) -> torch.Tensor:
        """omega (S, C) from the (S, C) counts."""
        raise NotImplementedError

    @torch.no_grad()
    def observe(self, z: torch.Tensor, labels: torch.Tensor):
        stat = self.statistic(z.float()).to(self.counts)
        self.counts.index_add_(1, labels.to(self.counts.device), stat.t())

    def statistics(self) -> torch.Tensor:
        """This pass's (S, C) counts (the buffer itself: all-reduce it in place)."""
        return self.counts

    @torch.no_grad()
    def end_epoch(self) -> torch.Tensor:
        """Re-estimate omega from the counts of this pass, then reset them. Returns the counts."""
        used = self.counts.clone()
        omega = self.keep_initial_without_counts(self.estimate(used).float(), used)
        self.weight.copy_(omega)
        self.last_counts.copy_(used)
        self.counts.zero_()
        self.epochs_estimated += 1
        return used

    def keep_initial_without_counts(self, omega: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """A class without samples in this estimate keeps its initial column."""
        unseen = counts.sum(dim=0) == 0
        omega[:, unseen] = self.one_hot(self.initial)[:, unseen].to(omega)
        return omega

    def text_counts(self) -> torch.Tensor:
        return self.last_counts

    def class_weights(self, table: TextTable, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        column = self.weight[:, c]
        used = torch.nonzero(column).flatten()
        return used, column[used]

    def mapping_of(self, c: int, n: int = 5) -> list[tuple[int, float]]:
        """Class c's largest mapping weights: [(source index, weight)] (one entry for ILM)."""
        column = self.weight[:, c]
        top = torch.topk(column, min(int(n), column.numel()))
        return [(int(i), float(w)) for w, i in zip(top.values, top.indices, strict=False) if w > 0]


def check_settings(laplace: float | None = None, topk_ratio: float | None = None, node: str = "TRAINER.<NAME>") -> None:
    """The mapping settings' ranges (the trainers call it before loading anything)."""
    if laplace is not None and float(laplace) < 0:
        raise ValueError(f"The Laplace smoothing lambda must be >= 0, got {laplace} ({node}.LAPLACE).")
    if topk_ratio is not None and not 0.0 < float(topk_ratio) <= 1.0:
        raise ValueError(f"{node}.TOPK_RATIO must lie in (0, 1], got {topk_ratio}.")


def argmax_counts(z: torch.Tensor) -> torch.Tensor:
    """(B, S) one-hot of each sample's top source text."""
    return torch.zeros_like(z).scatter_(1, z.argmax(dim=1, keepdim=True), 1.0)


@register_aggregation
class OneToOneMapping(LabelMapping):
    """ILM-VP: a greedy one-to-one mapping from the argmax counts."""

    kind = "ilm"
    WEIGHT_KIND = "one-to-one mapping"

    def statistic(self, z: torch.Tensor) -> torch.Tensor:
        return argmax_counts(z)

    @staticmethod
    def greedy(counts: torch.Tensor) -> torch.Tensor:
        """(C,) source index of each class: C times the largest remaining count, its row and column removed."""
        remaining = counts.double().clone()
        num_sources, num_classes = remaining.shape
        mapping = torch.empty(num_classes, dtype=torch.long)
        for _ in range(num_classes):
            flat = int(torch.argmax(remaining))  # the first maximum in row-major order
            s, t = divmod(flat, num_classes)
            mapping[t] = s
            remaining[s, :] = -1.0
            remaining[:, t] = -1.0
        return mapping

    def estimate(self, counts: torch.Tensor) -> torch.Tensor:
        return self.one_hot(self.greedy(counts.cpu()).to(self.initial.device))

    def keep_initial_without_counts(self, omega: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return omega  # the greedy assignment maps every class (one-to-one); a fallback could break that

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, self.weight.argmax(dim=0)]  # the one-hot columns as a gather (exactly z @ omega)


@register_aggregation
class BayesianMapping(LabelMapping):
    """BLM: Laplace-smoothed conditional counts, each class's column normalised to sum 1."""

    kind = "blm"
    CONFIG_KEYS = ("LAPLACE",)
    WEIGHT_KIND = "BLM weight"

    def __init__(self, num_sources: int, num_classes: int, initial: Sequence[int], laplace: float = 1.0):
        super().__init__(num_sources, num_classes, initial)
        check_settings(laplace=laplace)
        self.laplace = float(laplace)

    def statistic(self, z: torch.Tensor) -> torch.Tensor:
        return argmax_counts(z)

    def estimate(self, counts: torch.Tensor) -> torch.Tensor:
        counts = counts.double()
        smoothed = counts / (counts.sum(dim=1, keepdim=True) + self.laplace)
        total = smoothed.sum(dim=0, keepdim=True)
        return torch.where(total > 0, smoothed / total.clamp_min(torch.finfo(torch.float64).tiny), smoothed)


@register_aggregation
class BayesianTopKMapping(BayesianMapping):
    """BLM+: each sample adds its k largest source probabilities (softmax over all S texts) to its class;
    k = max(1, floor(TOPK_RATIO x C)) (the reference: int(C x 0.15), which is 0 below 7 classes)."""

    kind = "blm_plus"
    CONFIG_KEYS = ("LAPLACE", "TOPK_RATIO")
    WEIGHT_KIND = "BLM+ weight"

    def __init__(self, num_sources: int, num_classes: int, initial: Sequence[int], laplace: float = 1.0,
                 topk: int = 1):
        super().__init__(num_sources, num_classes, initial, laplace)
        self.topk = int(topk)
        if not 1 <= self.topk <= self.num_sources:
            raise ValueError(f"BLM+ keeps k in [1, {self.num_sources}] source probabilities per sample, got "
                             f"k = {topk} (TRAINER.<NAME>.TOPK_RATIO x the number of classes).")

    @classmethod
    def for_table(cls, table: TextTable, laplace: float = 1.0, topk_ratio: float = 0.15) -> BayesianTopKMapping:
        check_settings(topk_ratio=topk_ratio)
        topk = max(1, int(table.num_classes * float(topk_ratio)))
        return cls(len(table), table.num_classes, table.first_entries(), laplace=laplace, topk=topk)

    def statistic(self, z: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(z, dim=1)
        top = torch.topk(probs, self.topk, dim=1)
        return torch.zeros_like(probs).scatter_(1, top.indices, top.values)
