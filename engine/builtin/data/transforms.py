"""``build_transform`` with Dassl's transform names (the ones CoOp configs use and a few more)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torchvision.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    Normalize,
    RandAugment,
    RandomApply,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)
from torchvision.transforms.functional import InterpolationMode

if TYPE_CHECKING:
    from yacs.config import CfgNode

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

AVAI_CHOICES = [
    "random_flip", "random_resized_crop", "normalize", "instance_norm", "random_crop", "center_crop",
    "cutout", "randaugment", "colorjitter", "randomgrayscale", "gaussian_blur", "gaussian_noise",
]


class Cutout:
    """Zero out ``n_holes`` square patches of side ``length`` of a tensor image."""

    def __init__(self, n_holes=1, length=16):
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img):
        h, w = img.shape[1:]
        mask = torch.ones(h, w)
        for _ in range(self.n_holes):
            y, x = torch.randint(h, (1,)).item(), torch.randint(w, (1,)).item()
            y1, y2 = max(0, y - self.length // 2), min(h, y + self.length // 2)
            x1, x2 = max(0, x - self.length // 2), min(w, x + self.length // 2)
            mask[y1:y2, x1:x2] = 0
        return img * mask


class GaussianNoise:
    def __init__(self, mean=0, std=0.15, p=0.5):
        self.mean, self.std, self.p = mean, std, p

    def __call__(self, img):
        if torch.rand(1).item() > self.p:
            return img
        return img + torch.randn_like(img) * self.std + self.mean


class InstanceNormalization:
    def __call__(self, img):
        c = img.shape[0]
        flat = img.reshape(c, -1)
        return ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-8)).reshape(img.shape)


def build_transform(cfg: CfgNode, is_train: bool = True, choices: Sequence[str] | None = None) -> Compose:
    """Training or test transform from ``cfg.INPUT`` (``choices`` defaults to INPUT.TRANSFORMS)."""
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    for choice in choices:
        if choice not in AVAI_CHOICES:
            raise ValueError(f"Unknown transform [{choice}] in INPUT.TRANSFORMS; available: {AVAI_CHOICES}")
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(f"INPUT.INTERPOLATION must be one of {list(INTERPOLATION_MODES)}")
    target_size = f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}"
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    build = _build_transform_train if is_train else _build_transform_test
    return build(cfg, choices, target_size, normalize)


def _build_transform_train(cfg, choices, target_size, normalize):
    print("Building transform_train")
    tfm = []
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    input_size = tuple(cfg.INPUT.SIZE)
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {target_size}")
        tfm.append(Resize(input_size, interpolation=interp))
    if "random_crop" in choices:
        print(f"+ random crop (padding = {cfg.INPUT.CROP_PADDING})")
        tfm.append(RandomCrop(input_size, padding=cfg.INPUT.CROP_PADDING))
    if "random_resized_crop" in choices:
        print(f"+ random resized crop (size={cfg.INPUT.SIZE}, scale={cfg.INPUT.RRCROP_SCALE})")
        tfm.append(RandomResizedCrop(input_size, scale=tuple(cfg.INPUT.RRCROP_SCALE), interpolation=interp))
    if "center_crop" in choices:
        print(f"+ center crop (size: {target_size})")
        tfm.append(CenterCrop(input_size))
    if "random_flip" in choices:
        print("+ random flip")
        tfm.append(RandomHorizontalFlip())
    if "randaugment" in choices:
        print(f"+ randaugment (n={cfg.INPUT.RANDAUGMENT_N}, m={cfg.INPUT.RANDAUGMENT_M})")
        tfm.append(RandAugment(cfg.INPUT.RANDAUGMENT_N, cfg.INPUT.RANDAUGMENT_M))
    if "colorjitter" in choices:
        print("+ color jitter")
        tfm.append(ColorJitter(cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C, cfg.INPUT.COLORJITTER_S,
                               cfg.INPUT.COLORJITTER_H))
    if "randomgrayscale" in choices:
        print("+ random gray scale")
        tfm.append(RandomGrayscale(p=cfg.INPUT.RGS_P))
    if "gaussian_blur" in choices:
        print("+ gaussian blur")
        k = cfg.INPUT.GB_K if cfg.INPUT.GB_K % 2 == 1 else cfg.INPUT.GB_K + 1
        tfm.append(RandomApply([GaussianBlur(k)], p=cfg.INPUT.GB_P))
    print("+ to torch tensor of range [0, 1]")
    tfm.append(ToTensor())
    if "cutout" in choices:
        print(f"+ cutout (n_holes={cfg.INPUT.CUTOUT_N}, length={cfg.INPUT.CUTOUT_LEN})")
        tfm.append(Cutout(cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN))
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm.append(normalize)
    if "gaussian_noise" in choices:
        print(f"+ gaussian noise (mean={cfg.INPUT.GN_MEAN}, std={cfg.INPUT.GN_STD})")
        tfm.append(GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD))
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm.append(InstanceNormalization())
    return Compose(tfm)


def _build_transform_test(cfg, choices, target_size, normalize):
    print("Building transform_test")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    print(f"+ resize the smaller edge to {max(cfg.INPUT.SIZE)}")
    print(f"+ {target_size} center crop")
    print("+ to torch tensor of range [0, 1]")
    tfm = [Resize(max(cfg.INPUT.SIZE), interpolation=interp), CenterCrop(tuple(cfg.INPUT.SIZE)), ToTensor()]
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm.append(normalize)
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm.append(InstanceNormalization())
    return Compose(tfm)
