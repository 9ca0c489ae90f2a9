"""What every frozen model the prompts reprogram shares: eval mode, no gradients to its weights, and the
input facts (size, normalisation) the prompts and transforms are built from (vr/clip.py, vr/classifier.py)."""
from __future__ import annotations

import torch


class FrozenBackbone:
    """Holds ``backbone.model`` frozen and in eval mode. Not an ``nn.Module``: the weights never enter a
    checkpoint and a module's ``.train()`` never switches the model (or its BatchNorm) out of inference mode."""

    def __init__(self, backbone):
        self.backbone = backbone
        self.model = backbone.model
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.image_size = int(backbone.image_size)
        self.mean, self.std = tuple(backbone.mean), tuple(backbone.std)
        self.name = backbone.name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
