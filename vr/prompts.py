"""Visual prompts: the trainable "input space" half of reprogramming.

Convention for the whole toolkit: the data loader yields UNNORMALISED images in [0, 1] (at
``loader_size``); a prompt module adds its pattern and applies CLIP's mean/std normalisation, so every
prompt is ``forward(x01) -> normalised (v*B, 3, S, S)`` where S is the backbone's image size.

v prompts are stored as ONE parameter ``delta`` of shape (v, 3, S, S) and applied to a batch in one
tensor operation; the output is prompt-major: rows ``i*B .. (i+1)*B-1`` are the batch under prompt i.

Prompt kinds register themselves (``@register_prompt``): a kind is one class that says its name, the
config keys it reads, the loader's image size, how its learned prompt is drawn (``pictures``) and, when
it is additive, how its output splits into an image part and a prompt part (``additive_parts``; the
encoder then runs CLIP's affine first layer on each part, see vr/clip.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .kinds import KindClass, KindRegistry, settings_of

if TYPE_CHECKING:
    from yacs.config import CfgNode

PROMPTS = KindRegistry("visual prompt kind")


def register_prompt(cls: KindClass) -> KindClass:
    """Class decorator: ``TRAINER.<NAME>.PROMPT <cls.kind>`` builds ``cls``."""
    return PROMPTS.register(cls)


def prompt_kinds() -> tuple[str, ...]:
    """The registered prompt kind names."""
    return PROMPTS.names()


def prompt_class(kind: str, key: str = "TRAINER.<NAME>.PROMPT") -> type:
    """The class registered as ``kind`` (case-insensitive); an unknown name gets the close match and the list."""
    return PROMPTS.get(kind, key)


def frame_mask(image_size: int, inner: int, top_left: int) -> torch.Tensor:
    """(1, 1, S, S) mask: 1 on the frame, 0 on the inner ``inner`` x ``inner`` square at ``top_left``."""
    mask = torch.ones(1, 1, image_size, image_size)
    mask[..., top_left:top_left + inner, top_left:top_left + inner] = 0.0
    return mask


def stretched(change: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(picture in [0, 1] with grey = 0 and the largest |change| at 0 or 1, that largest |change|)."""
    scale = float(change.abs().max())
    return (0.5 + 0.5 * change / scale if scale > 0 else torch.full_like(change, 0.5)), scale


class AdditiveParts(NamedTuple):
    """``forward(x01) == normalise(pixels)[None] + pattern[:, None]`` (prompt-major), up to float rounding.

    ``pixels`` (B, 3, S, S): the image part before normalisation (needs no gradient, shared by the v
    prompts); ``pattern`` (v, 3, S, S) in normalised space, or None: the prompt part (shared by the batch).
    """

    pixels: torch.Tensor
    pattern: torch.Tensor | None


class VisualPrompt(nn.Module):
    """Base class: normalisation, input checks, the count of output-changing entries, the registry hooks."""

    kind = "none"
    CONFIG_KEYS: tuple[str, ...] = ()  # keys of TRAINER.<NAME> the kind reads, passed lower-cased to __init__
    ADDITIVE = False  # True: additive_parts() is exact, so the encoder may split its first layer

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], num_prompts: int = 1):
        super().__init__()
        if int(num_prompts) < 1:
            raise ValueError(f"The number of visual prompts must be at least 1, got {num_prompts}.")
        self.image_size = int(image_size)
        self.num_prompts = int(num_prompts)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def loader_size_of(cls, image_size: int, **settings) -> int:
        """Side of the [0, 1] images the loader yields for this kind (without building the prompt)."""
        return int(image_size)

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

    def additive_parts(self, x01: torch.Tensor) -> AdditiveParts:
        """The image part and the prompt part of ``forward(x01)`` (only for ADDITIVE kinds)."""
        raise NotImplementedError(f"The {self.kind} prompt is not additive (ADDITIVE = False).")

    def pictures(self) -> list[list[tuple[torch.Tensor, str]]]:
        """Per prompt, its panels [((3, S, S) picture in [0, 1], caption)] for scripts/plot_prm.py."""
        return []

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        self.check_input(x01)
        out = self.normalise(x01)
        return out.repeat(self.num_prompts, 1, 1, 1) if self.num_prompts > 1 else out


@register_prompt
class NoPrompt(VisualPrompt):
    """Identity + normalisation (zero-shot CLIP)."""

    kind = "none"
    ADDITIVE = True

    def additive_parts(self, x01: torch.Tensor) -> AdditiveParts:
        self.check_input(x01)
        return AdditiveParts(x01, None)


@register_prompt
class PaddingPrompt(VisualPrompt):
    """AR / AttrVR / DVP: the image (input_size) is zero-padded to S; ``sigmoid(delta)`` fills the frame.

    Left/top pad = (S - input_size + 1) // 2, right/bottom pad = (S - input_size) // 2. The pattern is
    added in [0,1] pixel space, before normalisation (no clamp, so the sum is affine in the pattern).
    """

    kind = "padding"
    CONFIG_KEYS = ("INPUT_SIZE",)
    ADDITIVE = True
    IMAGE_AREA_GREY = 0.25  # where the image goes, in the prompt pictures

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

    @classmethod
    def loader_size_of(cls, image_size: int, input_size: int = 192, **settings) -> int:
        return int(input_size)

    @property
    def loader_size(self) -> int:
        return self.input_size

    def num_trainable_entries(self) -> int:
        return int(self.mask.sum().item()) * 3 * self.num_prompts

    def padded(self, x01: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S): the images in the centre, zeros on the frame."""
        self.check_input(x01)
        b, a = self.pad_before, self.pad_after
        return F.pad(x01, (b, a, b, a))

    def pattern(self) -> torch.Tensor:
        """(v, 3, S, S): what each prompt adds in [0, 1] pixel space."""
        return torch.sigmoid(self.delta) * self.mask

    def additive_parts(self, x01: torch.Tensor) -> AdditiveParts:
        return AdditiveParts(self.padded(x01), self.pattern() / self.std)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        x = self.padded(x01)
        out = x.unsqueeze(0) + self.pattern().unsqueeze(1).to(x.dtype)  # (v, B, 3, S, S)
        out = out.reshape(-1, 3, self.image_size, self.image_size)
        return self.normalise(out)

    def pictures(self) -> list[list[tuple[torch.Tensor, str]]]:
        """What is added (sigmoid(delta) on the frame, the image area dark grey) and the change from the
        untrained start sigmoid(0) = 0.5, stretched to be visible."""
        mask = self.mask[0]
        panels = []
        for i, added in enumerate(self.pattern().detach().float()):
            change, scale = stretched((added - 0.5) * mask)
            panels.append([(added + self.IMAGE_AREA_GREY * (1 - mask),
                            f"prompt {i} (padding): sigmoid(delta)\non the frame; dark: image area"),
                           (change, f"change from the start (0.5),\nstretched: grey = 0, max {scale:.3g}")])
        return panels


@register_prompt
class WatermarkPrompt(VisualPrompt):
    """VP: the image at S is normalised, then ``delta * mask`` (frame of width ``pad``) is added.

    No sigmoid, no clamp, as in the reference implementation (so the sum is exactly additive).
    """

    kind = "watermark"
    CONFIG_KEYS = ("PAD",)
    ADDITIVE = True

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

    def additive_parts(self, x01: torch.Tensor) -> AdditiveParts:
        self.check_input(x01)
        return AdditiveParts(x01, self.delta * self.mask)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        self.check_input(x01)
        x = self.normalise(x01)
        out = x.unsqueeze(0) + (self.delta * self.mask).unsqueeze(1).to(x.dtype)
        return out.reshape(-1, 3, self.image_size, self.image_size)

    def pictures(self) -> list[list[tuple[torch.Tensor, str]]]:
        """delta on the frame, rescaled so that grey is 0."""
        panels = []
        for i, added in enumerate((self.delta * self.mask).detach().float()):
            picture, scale = stretched(added)
            caption = f"prompt {i} (watermark): delta on the\nframe, grey = 0, max |delta| {scale:.3g}"
            panels.append([(picture, caption)])
        return panels


def prompt_settings(cls: type, node: CfgNode) -> dict:
    """The kind's own keys of a trainer node, lower-cased (the keyword arguments of its __init__)."""
    return settings_of(cls, node)


def build_prompt(kind: str, image_size: int, mean: Sequence[float], std: Sequence[float], num_prompts: int = 1,
                 **settings: Any) -> VisualPrompt:
    """Make the prompt registered as ``kind`` for a backbone of ``image_size``.

    ``settings`` are config keys lower-cased (``input_size=192``); the kind takes those it declares in
    CONFIG_KEYS, so a caller may pass a trainer node's keys of every kind.
    """
    cls = prompt_class(kind)
    own = {key.lower() for key in cls.CONFIG_KEYS}
    return cls(image_size, num_prompts=num_prompts, mean=mean, std=std,
               **{k: v for k, v in settings.items() if k in own})


def prompt_from_node(node: CfgNode, image_size: int, mean: Sequence[float], std: Sequence[float],
                     num_prompts: int = 1) -> VisualPrompt:
    """The prompt a trainer node (``TRAINER.<NAME>``: PROMPT and the kind's keys) describes."""
    cls = prompt_class(node.PROMPT)
    return build_prompt(node.PROMPT, image_size, mean, std, num_prompts, **prompt_settings(cls, node))


def loader_size_for(node: CfgNode, image_size: int) -> int:
    """Side of the [0,1] images the loader yields for a trainer node's prompt (without building it)."""
    cls = prompt_class(node.PROMPT)
    return cls.loader_size_of(image_size, **prompt_settings(cls, node))
