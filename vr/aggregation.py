"""From text logits z to class logits (B, C).

An aggregation reads the text table's layout (vr/text.py): ``LAYOUT = "blocks"`` takes the description
logits of each class's own block, z (B, C, M'); ``LAYOUT = "free"`` takes the logits of all N texts,
z (B, N), and maps them to classes itself (label mapping, vr/mapping.py).

Every aggregation is an ``nn.Module`` with two optional hooks the trainers call generically:
``observe(z, labels)`` (statistics) and ``end_epoch()`` (re-estimation). ``STATISTICS`` says where the
statistics come from: ``"training"`` (the PRM: the forwards of the training steps, estimated at each
epoch end) or ``"pass"`` (label mapping: a separate no-grad pass over the training set with the current
prompt before every epoch, then estimated). Explanations and plots ask any aggregation for
``class_weights(table, c)`` (which texts make class c's logit, with which weights) and ``text_counts``.

Aggregations register themselves (``@register_aggregation``) under their ``kind``, with the config keys
they read (``CONFIG_KEYS``, passed lower-cased to ``for_table``), so a trainer builds one from a name
(``aggregation_from_node``) and an unknown name gets the close match and the list.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .kinds import KindClass, KindRegistry, settings_of

if TYPE_CHECKING:
    from yacs.config import CfgNode

    from .text import TextTable

AGGREGATIONS = KindRegistry("aggregation")


def register_aggregation(cls: KindClass) -> KindClass:
    """Class decorator: ``cls.kind`` names the aggregation (``aggregation_from_node``)."""
    return AGGREGATIONS.register(cls)


def aggregation_kinds() -> tuple[str, ...]:
    return AGGREGATIONS.names()


def aggregation_class(kind: str, key: str = "TRAINER.<NAME>.AGGREGATION") -> type:
    return AGGREGATIONS.get(kind, key)


def aggregation_from_node(kind: str, table: TextTable, node: CfgNode,
                          key: str = "TRAINER.<NAME>.AGGREGATION") -> Aggregation:
    """The aggregation registered as ``kind`` for ``table``, with its keys read from a trainer node."""
    cls = aggregation_class(kind, key)
    return cls.for_table(table, **settings_of(cls, node))


class Aggregation(nn.Module):
    """Base: no state, no statistics."""

    kind = ""  # the registered name (``@register_aggregation``)
    CONFIG_KEYS: tuple[str, ...] = ()  # keys of TRAINER.<NAME> it reads, passed lower-cased to ``for_table``
    WEIGHT_KIND = ""  # what ``text_weights`` are, in words (explanations print it)
    LAYOUT = "blocks"  # the text table layout it reads: "blocks" (B, C, M') | "free" (B, N)
    STATISTICS = "training"  # where observe() gets its logits: "training" forwards | a "pass" before each epoch

    @classmethod
    def for_table(cls, table: TextTable, **settings: object) -> Aggregation:
        """The aggregation for ``table`` (a class with constructor arguments overrides this)."""
        return cls(**settings)

    def check_table(self, table: TextTable) -> None:
        """Raise a clear error if this aggregation cannot read ``table`` (layout, sizes)."""
        if self.LAYOUT == "blocks":
            if not table.blocked:
                raise ValueError(f"The {type(self).__name__} aggregation reads a block of texts per class, but the "
                                 f"text table has {table.layout()}.")
            self.check(table.num_classes, table.num_slots)
        elif self.LAYOUT == "free":
            if table.blocked:
                raise ValueError(f"The {type(self).__name__} aggregation maps free texts to classes, but the text "
                                 f"table is laid out in class blocks ({table.layout()}): build it with "
                                 f"vr.TextTable.free.")
            self.check_free(table.num_classes, len(table))
        else:
            raise ValueError(f'{type(self).__name__}.LAYOUT is "{self.LAYOUT}"; use "blocks" or "free".')

    def check_free(self, num_classes: int, num_texts: int) -> None:
        """Free layout: raise if this aggregation cannot map N texts to C classes."""

    def class_weights(self, table: TextTable, c: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(entry indices, weights) of the texts whose logits make class c's logit, when that logit is a
        fixed weighted sum of text logits; None when the weights depend on the image. Class blocks: the
        class's own block with ``text_weights``."""
        if not table.blocked:
            return None
        weights = self.text_weights(table.num_classes, table.num_slots)
        return None if weights is None else (table.class_block(c), weights[c])

    def text_weights(self, num_classes: int, num_slots: int) -> torch.Tensor | None:
        """(C, M') weight of each text in its class logit when the class logit is a fixed weighted sum of the
        class's text logits (what explanations and plots show); None when the weights depend on the image."""
        return None

    def text_counts(self) -> torch.Tensor | None:
        """(C, M') statistics behind ``text_weights`` (the PRM's counts), or None."""
        return None

    def check(self, num_classes: int, num_slots: int) -> None:
        """Raise a clear error if this aggregation cannot handle (C, M') description logits."""

    def observe(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """Called with the (detached) description logits of every training batch."""

    def end_epoch(self) -> None:
        """Called once at the end of every training epoch."""


@register_aggregation
class Identity(Aggregation):
    """One text per class (templates): the class logit is that text's logit."""

    kind = "identity"
    WEIGHT_KIND = "identity"

    def text_weights(self, num_classes: int, num_slots: int) -> torch.Tensor | None:
        self.check(num_classes, num_slots)
        return torch.ones(num_classes, 1)

    def check(self, num_classes: int, num_slots: int) -> None:
        if num_slots != 1:
            raise ValueError(f"Identity aggregation needs one text per class, got {num_slots}.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[..., 0]


@register_aggregation
class Mean(Aggregation):
    """Uniform mean over a class's descriptions (the PRM's starting point; DVP ablation "mean")."""

    kind = "mean"
    WEIGHT_KIND = "uniform weight (mean)"

    def text_weights(self, num_classes: int, num_slots: int) -> torch.Tensor | None:
        return torch.full((num_classes, num_slots), 1.0 / num_slots)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean(dim=-1)


@register_aggregation
class TopKMean(Aggregation):
    """AttrVR: per class, the mean of the k largest description logits."""

    kind = "topk_mean"
    CONFIG_KEYS = ("K",)

    def __init__(self, k: int = 3):
        super().__init__()
        self.k = int(k)
        if self.k < 1:
            raise ValueError(f"Top-k mean needs k >= 1, got {k}.")

    def check(self, num_classes: int, num_slots: int) -> None:
        if self.k > num_slots:
            raise ValueError(f"Top-k mean with k = {self.k} needs at least k descriptions per class, but "
                             f"there are m = {num_slots}. Lower TRAINER.<NAME>.K or raise TRAINER.<NAME>.M.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.check(z.shape[1], z.shape[-1])
        return torch.topk(z, self.k, dim=-1).values.mean(dim=-1)


class LambdaMix(Aggregation):
    """AttrVR: ``lam * first(z[..., :split]) + (1 - lam) * second(z[..., split:])`` (DesAttr, DistAttr)."""

    def __init__(self, first: Aggregation, second: Aggregation, split: int, lam: float = 0.5):
        super().__init__()
        if not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"The mixing weight lambda must lie in [0, 1], got {lam} (TRAINER.ATTRVR.LAMBDA).")
        self.first, self.second, self.split, self.lam = first, second, int(split), float(lam)

    def check(self, num_classes: int, num_slots: int) -> None:
        if not 0 < self.split < num_slots:
            raise ValueError(f"Cannot split {num_slots} descriptions per class at {self.split}.")
        self.first.check(num_classes, self.split)
        self.second.check(num_classes, num_slots - self.split)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lam * self.first(z[..., :self.split]) + (1.0 - self.lam) * self.second(z[..., self.split:])
