"""Visual prompts: the trainable "input space" half of reprogramming.

Convention for the whole toolkit: the data loader yields UNNORMALISED images in [0, 1] (at
``loader_size``); a prompt module adds its pattern and applies CLIP's mean/std normalisation, so every
prompt is ``forward(x01) -> normalised (v*B, 3, S, S)`` where S is the backbone's image size.

v prompts are stored as ONE parameter ``delta`` of shape (v, 3, S, S) and applied to a batch in one
tensor operation; the output is prompt-major: rows ``i*B .. (i+1)*B-1`` are the batch under prompt i.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

PROMPT_KINDS = ("padding", "watermark", "none")


def frame_mask(image_size: int, inner: int, top_left: int) -> torch.Tensor:
    """(1, 1, S, S) mask: 1 on the frame, 0 on the inner ``inner`` x ``inner`` square at ``top_left``."""
    mask = torch.ones(1, 1, image_size, image_size)
    mask[..., top_left:top_left + inner, top_left:top_left + inner] = 0.0
    return mask


class VisualPrompt(nn.Module):
    """Base class: normalisation, input checks, the count of output-changing entries."""

    kind = "none"

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], num_prompts: int = 1):
        super().__init__()
        if int(num_prompts) < 1:
            raise ValueError(f"The number of visual prompts must be at least 1, got {num_prompts}.")
        self.image_size = int(image_size)
        self.num_prompts = int(num_prompts)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def loader_size(self) -> int:
        """Side length of the [0, 1] images the data loader must yield for this prompt."""
        return self.image_size

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def check_input(self, x: torch.Tensor):
        size = self.loader_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
            raise ValueError(
                f"The {self.kind} prompt expects a batch of [0,1] images of shape (B, 3, {size}, {size}) "
                f"from the VR data pipeline, got {tuple(x.shape)}. Build the loader with the trainer's "
                f"VR transforms (input size {size}).")

    def num_trainable_entries(self) -> int:
        """Number of entries of ``delta`` that can change the output (all prompts together)."""
        return 0

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        self.check_input(x01)
        out = self.normalise(x01)
        return out.repeat(self.num_prompts, 1, 1, 1) if self.num_prompts > 1 else out


class NoPrompt(VisualPrompt):
    """Identity + normalisation (zero-shot CLIP)."""

    kind = "none"


class PaddingPrompt(VisualPrompt):
    """AR / AttrVR / DVP: the image (input_size) is zero-padded to S; ``sigmoid(delta)`` fills the frame.

    Left/top pad = (S - input_size + 1) // 2, right/bottom pad = (S - input_size) // 2. The pattern is
    added in [0,1] pixel space, before normalisation.
    """

    kind = "padding"

    def __init__(self, image_size: int = 224, input_size: int = 192, num_prompts: int = 1,
                 mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)):
        super().__init__(image_size, mean, std, num_prompts)
        input_size = int(input_size)
        if not 0 < input_size < self.image_size:
            raise ValueError(
                f"Padding prompt: the input size ({input_size}) must be smaller than the backbone's "
                f"image size ({self.image_size}), so that a frame is left for the prompt. Set "
                f"TRAINER.<NAME>.INPUT_SIZE below {self.image_size} (192 for a 224 backbone).")
        self.input_size = input_size
        self.pad_before = (self.image_size - input_size + 1) // 2
        self.pad_after = (self.image_size - input_size) // 2
        self.delta = nn.Parameter(torch.zeros(self.num_prompts, 3, self.image_size, self.image_size))
        self.register_buffer("mask", frame_mask(self.image_size, input_size, self.pad_before), persistent=False)

    @property
    def loader_size(self) -> int:
        return self.input_size

    def num_trainable_entries(self) -> int:
        return int(self.mask.sum().item()) * 3 * self.num_prompts

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        self.check_input(x01)
        b, a = self.pad_before, self.pad_after
        x = F.pad(x01, (b, a, b, a))  # (B, 3, S, S), zeros on the frame
        pattern = torch.sigmoid(self.delta) * self.mask  # (v, 3, S, S)
        out = x.unsqueeze(0) + pattern.unsqueeze(1).to(x.dtype)  # (v, B, 3, S, S)
        out = out.reshape(-1, 3, self.image_size, self.image_size)
        return self.normalise(out)


class WatermarkPrompt(VisualPrompt):
    """VP: the image at S is normalised, then ``delta * mask`` (frame of width ``pad``) is added.

    No sigmoid, no clamp, as in the reference implementation.
    """

    kind = "watermark"

    def __init__(self, image_size: int = 224, pad: int = 30, num_prompts: int = 1,
                 mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)):
        super().__init__(image_size, mean, std, num_prompts)
        pad = int(pad)
        if not 0 < 2 * pad < self.image_size:
            raise ValueError(
                f"Watermark prompt: a frame of width {pad} does not fit an image of size {self.image_size} "
                f"(need 0 < 2 * pad < {self.image_size}). Set TRAINER.<NAME>.PAD accordingly (30 for 224).")
        self.pad = pad
        self.delta = nn.Parameter(torch.zeros(self.num_prompts, 3, self.image_size, self.image_size))
        self.register_buffer("mask", frame_mask(self.image_size, self.image_size - 2 * pad, pad), persistent=False)

    def num_trainable_entries(self) -> int:
        return int(self.mask.sum().item()) * 3 * self.num_prompts

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        self.check_input(x01)
        x = self.normalise(x01)
        out = x.unsqueeze(0) + (self.delta * self.mask).unsqueeze(1).to(x.dtype)
        return out.reshape(-1, 3, self.image_size, self.image_size)


def build_prompt(kind: str, image_size: int, mean, std, num_prompts: int = 1, input_size: int = 192,
                 pad: int = 30) -> VisualPrompt:
    """Make the prompt named ``kind`` ("padding", "watermark" or "none") for a backbone of ``image_size``."""
    kind = str(kind).lower()
    if kind == "padding":
        return PaddingPrompt(image_size, input_size, num_prompts, mean, std)
    if kind == "watermark":
        return WatermarkPrompt(image_size, pad, num_prompts, mean, std)
    if kind == "none":
        return NoPrompt(image_size, mean, std, num_prompts)
    raise ValueError(f'Unknown visual prompt kind "{kind}" (TRAINER.<NAME>.PROMPT). '
                     f"Use one of: {', '.join(PROMPT_KINDS)}.")


def loader_size_for(kind: str, image_size: int, input_size: int) -> int:
    """Size of the [0,1] images the loader yields for a prompt kind (without building the prompt)."""
    return int(input_size) if str(kind).lower() == "padding" else int(image_size)
