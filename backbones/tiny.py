"""`test-tiny` (ViT) and `test-tiny-rn` (ResNet): small randomly initialised CLIPs for tests and the demo.

Its weights come from a fixed seed in a forked RNG, so they are identical in every process and do not
depend on the run's seed: a checkpoint of prompts re-evaluates to the same accuracy anywhere.
"""
import copy

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from .registry import register_backbone
from .tokenizers import clip_tokenizer

TINY_SEED = 20250601


def _seeded_clip(vision, text, embed_dim, seed):
    """open_clip's CLIP built from a fixed seed in a forked RNG (the caller's RNG state is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)


def build_tiny_clip(width=64, layers=2, heads=2, embed_dim=64, pool_type="tok", seed=TINY_SEED):
    """A 224x224, patch-16 ViT CLIP with a small text tower and OpenAI's tokenizer vocabulary."""
    vision = CLIPVisionCfg(layers=layers, width=width, head_width=width // heads, patch_size=16,
                           image_size=224, pool_type=pool_type)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=width, heads=heads, layers=layers)
    return _seeded_clip(vision, text, embed_dim, seed)


_BUILT = {}


def _copy_of_built(name, build):
    """A deep copy of ``build()``, which runs once per process: its weights come from a fixed seed, so the copy is
    the same model bit for bit, and copying takes half the time of the random initialisation (tests build
    test-tiny some hundred times per process)."""
    if name not in _BUILT:
        _BUILT[name] = build()
    return copy.deepcopy(_BUILT[name])


@register_backbone("test-tiny")
def _test_tiny(device):
    model = _copy_of_built("test-tiny", build_tiny_clip).to(device)
    return model, clip_tokenizer("ViT-B-16")


def build_tiny_resnet_clip(width=8, layers=(1, 1, 1, 1), embed_dim=64, seed=TINY_SEED):
    """A 224x224 ModifiedResNet CLIP (open_clip's RN50 design, one block per stage) with test-tiny's text
    tower size: the ResNet code paths (stem convolution, attention pooling) in tests."""
    vision = CLIPVisionCfg(layers=tuple(layers), width=width, head_width=16, image_size=224)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
    return _seeded_clip(vision, text, embed_dim, seed)


@register_backbone("test-tiny-rn")
def _test_tiny_resnet(device):
    model = _copy_of_built("test-tiny-rn", build_tiny_resnet_clip).to(device)
    return model, clip_tokenizer("RN50")
