"""From description logits z (B, C, M') to class logits (B, C).

Every aggregation is an ``nn.Module`` with two optional hooks the trainers call generically:
``observe(z, labels)`` after each training forward (statistics), ``end_epoch()`` at epoch ends.
Only the PRM (vr/prm.py) uses them. Explanations and plots ask any aggregation for ``text_weights``
(the weight of each text in its class logit, where that is a fixed weighted sum) and ``text_counts``;
which prompt scores each text is the text table's ``prompt_grid()``.
"""
import torch
import torch.nn as nn


class Aggregation(nn.Module):
    """Base: no state, no statistics."""

    WEIGHT_KIND = ""  # what ``text_weights`` are, in words (explanations print it)

    def text_weights(self, num_classes: int, num_slots: int):
        """(C, M') weight of each text in its class logit when the class logit is a fixed weighted sum of the
        class's text logits (what explanations and plots show); None when the weights depend on the image."""
        return None

    def text_counts(self):
        """(C, M') statistics behind ``text_weights`` (the PRM's counts), or None."""
        return None

    def check(self, num_classes: int, num_slots: int):
        """Raise a clear error if this aggregation cannot handle (C, M') description logits."""

    def observe(self, z: torch.Tensor, labels: torch.Tensor):
        """Called with the (detached) description logits of every training batch."""

    def end_epoch(self):
        """Called once at the end of every training epoch."""


class Identity(Aggregation):
    """One text per class (templates): the class logit is that text's logit."""

    WEIGHT_KIND = "identity"

    def text_weights(self, num_classes, num_slots):
        self.check(num_classes, num_slots)
        return torch.ones(num_classes, 1)

    def check(self, num_classes, num_slots):
        if num_slots != 1:
            raise ValueError(f"Identity aggregation needs one text per class, got {num_slots}.")

    def forward(self, z):
        return z[..., 0]


class Mean(Aggregation):
    """Uniform mean over a class's descriptions (the PRM's starting point; DVP ablation "mean")."""

    WEIGHT_KIND = "uniform weight (mean)"

    def text_weights(self, num_classes, num_slots):
        return torch.full((num_classes, num_slots), 1.0 / num_slots)

    def forward(self, z):
        return z.mean(dim=-1)


class TopKMean(Aggregation):
    """AttrVR: per class, the mean of the k largest description logits."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.k = int(k)
        if self.k < 1:
            raise ValueError(f"Top-k mean needs k >= 1, got {k}.")

    def check(self, num_classes, num_slots):
        if self.k > num_slots:
            raise ValueError(f"Top-k mean with k = {self.k} needs at least k descriptions per class, but "
                             f"there are m = {num_slots}. Lower TRAINER.<NAME>.K or raise TRAINER.<NAME>.M.")

    def forward(self, z):
        self.check(z.shape[1], z.shape[-1])
        return torch.topk(z, self.k, dim=-1).values.mean(dim=-1)


class LambdaMix(Aggregation):
    """AttrVR: ``lam * first(z[..., :split]) + (1 - lam) * second(z[..., split:])`` (DesAttr, DistAttr)."""

    def __init__(self, first: Aggregation, second: Aggregation, split: int, lam: float = 0.5):
        super().__init__()
        if not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"The mixing weight lambda must lie in [0, 1], got {lam} (TRAINER.ATTRVR.LAMBDA).")
        self.first, self.second, self.split, self.lam = first, second, int(split), float(lam)

    def check(self, num_classes, num_slots):
        if not 0 < self.split < num_slots:
            raise ValueError(f"Cannot split {num_slots} descriptions per class at {self.split}.")
        self.first.check(num_classes, self.split)
        self.second.check(num_classes, num_slots - self.split)

    def forward(self, z):
        return self.lam * self.first(z[..., :self.split]) + (1.0 - self.lam) * self.second(z[..., self.split:])
