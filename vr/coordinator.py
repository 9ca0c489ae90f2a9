"""BlackVIP's coordinator (Oh et al. CVPR'23): an input-dependent visual prompt from a frozen image encoder and a
small learned decoder, the only part a black-box optimiser (SPSA-GC) trains.

    z = encoder(x)                      frozen, forward only (official: MAE ViT-B's [CLS] state; here: any CLIP
                                        image tower, see CoordinatorPrompt)
    prompt = decoder([z, trigger])      trigger: a learned vector filling z up to SRC_DIM = C x g x g
    out = clamp(x + eps * prompt)       x: the CLIP-normalised image; clamp per channel to the normalised
                                        images of [0, 1] (the official clip_clipping)

Decoder, as the official ``DecoderManual`` for a ViT encoder: [z, trigger] is read as (C, g, g) with g = S / 32
(7 at 224); four upsampling stages (depthwise 2x2 stride-2 transposed convolution, 1x1 transposed convolution
without bias, BatchNorm, GELU; channels C -> 64 -> 32 -> 32 -> 16) and a last 2x2 stride-2 transposed
convolution to 3 channels: S x S. At z of 768 dimensions it has 9,920 learned entries (the trigger's 800 and
BatchNorm's affine included). Its BatchNorm runs in train mode during training queries, so the perturbed
queries use (and update) batch statistics, as in the official code.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .frozen import FrozenBackbone
from .prompts import VisualPrompt, register_prompt

UPSAMPLING_STAGES = 5  # four decoder stages and the last convolution, each doubling the side: g = S / 32


def decoder_grid(image_size: int) -> int:
    """g: the side of the decoder's first feature map for an S x S prompt."""
    image_size = int(image_size)
    if image_size % 2 ** UPSAMPLING_STAGES:
        raise ValueError(f"The coordinator's decoder doubles its map {UPSAMPLING_STAGES} times, so the backbone's "
                         f"image size must be a multiple of {2 ** UPSAMPLING_STAGES}; got {image_size}.")
    return image_size // 2 ** UPSAMPLING_STAGES


def frozen_image_tower(backbone) -> FrozenBackbone:
    """The coordinator's encoder from a loaded CLIP (``backbones.ClipBackbone``): its image tower only, frozen
    (the text tower and tokenizer are dropped: the learner keeps no more of the model than it uses)."""
    return FrozenBackbone(dataclasses.replace(backbone, model=backbone.model.visual, tokenizer=None))


def usable_channels(channels: int) -> bool:
    """The first stage's depthwise convolution has min(C, 64) groups: C must divide 64 or be a multiple of it."""
    return channels > 0 and (64 % channels == 0 if channels < 64 else channels % 64 == 0)


class CoordinatorDecoder(nn.Module):
    """[z, trigger] -> (B, 3, S, S) prompt (module docstring)."""

    def __init__(self, z_dim: int, src_dim: int = 1568, image_size: int = 224):
        super().__init__()
        grid = decoder_grid(image_size)
        area = grid * grid
        if src_dim % area or src_dim <= z_dim or not usable_channels(src_dim // area):
            smallest = next(c * area for c in range(z_dim // area + 1, 64 * (z_dim // area + 2))
                            if c * area > z_dim and usable_channels(c))
            raise ValueError(f"TRAINER.BLACKVIP.SRC_DIM ({src_dim}) must be {area} x C ({grid} x {grid}, the decoder's "
                             f"first map at {image_size}px) with C channels dividing 64 or a multiple of 64 (the "
                             f"first depthwise convolution's groups), and larger than the encoder's {z_dim} "
                             f"features (the trigger fills the rest); e.g. {smallest}.")
        self.z_dim, self.src_dim, self.grid = int(z_dim), int(src_dim), grid
        channels = src_dim // area
        self.trigger = nn.Parameter(torch.empty(1, src_dim - z_dim).uniform_(0.0, 0.1))
        groups = min(channels, 64)
        layers: list[nn.Module] = []
        for c_in, c_mid, c_out, g in ((channels, 64, 64, groups), (64, 64, 32, 64), (32, 32, 32, 32), (32, 32, 16, 32)):
            layers += [nn.ConvTranspose2d(c_in, c_mid, 2, 2, groups=g), nn.ConvTranspose2d(c_mid, c_out, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.GELU()]
        layers.append(nn.ConvTranspose2d(16, 3, 2, 2, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        cube = torch.cat([z, self.trigger.expand(z.shape[0], -1)], dim=1)
        return self.body(cube.view(z.shape[0], -1, self.grid, self.grid))


@register_prompt
class CoordinatorPrompt(VisualPrompt):
    """BlackVIP's input-dependent prompt (module docstring). Built by the BlackVIP trainer, which loads the
    frozen ``encoder`` (a ``vr.frozen.FrozenBackbone`` over a CLIP's image tower: ``model(x)`` gives z); the
    encoder is held outside the module tree, so its weights are never saved or trained. The encoder gets the
    image in its own normalisation and size (the same tensor as the black box's when they agree)."""

    kind = "coordinator"
    CONFIG_KEYS = ()  # its settings (TRAINER.BLACKVIP.SRC_DIM, P_EPS) and its encoder come from the trainer

    def __init__(self, image_size: int = 224, mean: Sequence[float] = (0.48145466, 0.4578275, 0.40821073),
                 std: Sequence[float] = (0.26862954, 0.26130258, 0.27577711), num_prompts: int = 1, encoder=None,
                 src_dim: int = 1568, p_eps: float = 1.0):
        super().__init__(image_size, mean, std, num_prompts)
        if encoder is None:
            raise ValueError("The coordinator prompt needs a frozen image encoder, which only the BlackVIP trainer "
                             "builds (TRAINER.BLACKVIP.ENCODER); use another PROMPT with this trainer.")
        if self.num_prompts != 1:
            raise ValueError(f"The coordinator makes one prompt per image; got {self.num_prompts} prompts.")
        self.__dict__["encoder"] = encoder  # not a submodule: frozen, never saved
        self.p_eps = float(p_eps)
        self.register_buffer("low", (0.0 - self.mean) / self.std, persistent=False)
        self.register_buffer("high", (1.0 - self.mean) / self.std, persistent=False)
        same_input = (int(encoder.image_size) == self.image_size and tuple(encoder.mean) == tuple(mean)
                      and tuple(encoder.std) == tuple(std))
        self.encoder_input = "the prompt's input" if same_input else (
            f"resized to {encoder.image_size}px in its own normalisation")
        self.decoder = CoordinatorDecoder(self.encode(torch.zeros(1, 3, self.image_size, self.image_size)).shape[1],
                                          int(src_dim), self.image_size)

    @torch.no_grad()
    def encode(self, x01: torch.Tensor) -> torch.Tensor:
        """z: the frozen encoder's image features of [0, 1] images; the last batch's are reused while the same,
        unchanged tensor comes back (a zeroth-order step queries one batch 2 SP_AVG times; writes that bypass
        autograd's version counter, through ``.data`` or shared NumPy memory, are not seen)."""
        last = self.__dict__.get("_last_z")
        if last is not None and last[0] is x01 and last[1] == x01._version:
            return last[2]
        z = self._encode(x01)
        self.__dict__["_last_z"] = (x01, x01._version, z)
        return z

    def _encode(self, x01: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        size = int(enc.image_size)
        x = x01 if size == x01.shape[-1] else F.interpolate(x01, size=(size, size), mode="bilinear",
                                                            align_corners=False, antialias=True)
        mean = torch.tensor(enc.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(enc.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return enc.model(((x - mean) / std).to(enc.device)).float().to(x01.device)  # the image tower

    def num_trainable_entries(self) -> int:
        return sum(p.numel() for p in self.decoder.parameters())

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        self.check_input(x01)
        x = self.normalise(x01)
        prompt = self.decoder(self.encode(x01))
        return torch.maximum(torch.minimum(x + self.p_eps * prompt.to(x.dtype), self.high), self.low)
