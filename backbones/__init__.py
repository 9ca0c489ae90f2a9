"""CLIP backbones through open_clip, named as CoOp names them.

``load_clip(name)`` accepts
- CoOp's spellings (``RN50``, ``RN101``, ``ViT-B/32``, ``ViT-B/16``, ``ViT-L/14``): OpenAI weights with QuickGELU;
- any open_clip model name (``ViT-B-16``, ``convnext_base``, ...) with a weights tag (``laion2b_s34b_b88k``)
  or a local checkpoint file given as ``weights``;
- a registered builder (``test-tiny``, ``digits-tiny``) that never touches the network.
"""
import contextlib
import logging
import os
from dataclasses import dataclass

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from .registry import BACKBONE_BUILDERS, register_backbone
from .tokenizers import clip_tokenizer
from . import tiny  # noqa: F401  (registers test-tiny, test-tiny-rn)
from . import digits_tiny  # noqa: F401  (registers digits-tiny)

# CoOp spelling -> open_clip model name (all with OpenAI weights and QuickGELU)
COOP_NAMES = {
    "RN50": "RN50",
    "RN101": "RN101",
    "RN50x4": "RN50x4",
    "RN50x16": "RN50x16",
    "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32",
    "ViT-B/16": "ViT-B-16",
    "ViT-L/14": "ViT-L-14",
    "ViT-L/14@336px": "ViT-L-14-336",
}


@dataclass
class ClipBackbone:
    """A frozen CLIP and what is needed to feed it."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def available_backbones():
    return sorted(BACKBONE_BUILDERS) + sorted(COOP_NAMES) + ["<any open_clip model name>"]


def resolve_name(name: str, weights: str = "") -> tuple[str, str]:
    """Map a config name to (open_clip model name, weights tag or path)."""
    if name in COOP_NAMES:
        return COOP_NAMES[name], weights or "openai"
    if name in open_clip.list_models():
        return name, weights
    close = [n for n in list(COOP_NAMES) + sorted(BACKBONE_BUILDERS) + open_clip.list_models()
             if n.lower().replace("/", "-") == name.lower().replace("/", "-")]
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ValueError(
        f'Unknown backbone "{name}" (MODEL.BACKBONE.NAME).{hint} Use a CoOp name '
        f'({", ".join(COOP_NAMES)}), a registered one ({", ".join(sorted(BACKBONE_BUILDERS))}) '
        f"or an open_clip model name (python -c 'import open_clip; print(open_clip.list_models())')."
    )


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(level)


class MissingWeightsError(RuntimeError):
    """The backbone's pretrained weights cannot be found or fetched (train.py prints one ERROR line)."""


def _missing_weights_message(model_name: str, weights: str, cache_dir: str | None, err: Exception) -> str:
    cfg = open_clip.get_pretrained_cfg(model_name, weights) or {}
    where = []
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/")
        hub_cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
            os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
        where.append(f"the Hugging Face repository {repo} (open_clip_pytorch_model.bin or "
                     f"open_clip_model.safetensors) into the hub cache {cache_dir or hub_cache}")
    if cfg.get("url"):
        where.append(f"{cfg['url']} to any path, then pass it as MODEL.BACKBONE.WEIGHTS /path/to/"
                     f"{os.path.basename(cfg['url'])}")
    how = ("Download " + ", or ".join(where) + ".") if where else (
        "Pass a local checkpoint file as MODEL.BACKBONE.WEIGHTS.")
    offline = " HF_HUB_OFFLINE is set, so nothing was downloaded." if os.environ.get("HF_HUB_OFFLINE") else ""
    return (f'Could not load the weights "{weights}" of CLIP model {model_name}: '
            f"{type(err).__name__}: {err}.{offline} {how} To try the toolkit without downloads, use "
            f"MODEL.BACKBONE.NAME test-tiny (random) or digits-tiny (pretrained here, offline).")


def load_clip(name: str, device="cpu", weights: str = "", pretrained: bool = True,
              cache_dir: str | None = None) -> ClipBackbone:
    """Build the named CLIP on ``device``, frozen and in eval mode, in fp32."""
    device = torch.device(device)
    if name in BACKBONE_BUILDERS:
        model, tokenizer = BACKBONE_BUILDERS[name](device)
        mean, std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    else:
        model_name, tag = resolve_name(name, weights)
        if not pretrained:
            tag = None
        elif tag and not os.path.isfile(tag) and tag not in open_clip.list_pretrained_tags_by_model(model_name):
            if os.path.sep in tag or tag.endswith((".pt", ".pth", ".bin", ".safetensors")):
                raise FileNotFoundError(
                    f"MODEL.BACKBONE.WEIGHTS names the file {tag}, which does not exist. "
                    f"Put the checkpoint there or fix the path.")
            raise ValueError(
                f'Unknown weights tag "{tag}" for {model_name}. Known tags: '
                f"{', '.join(open_clip.list_pretrained_tags_by_model(model_name)) or 'none'}; "
                f"or pass a local checkpoint file.")
        quick_gelu = name in COOP_NAMES or tag == "openai"
        try:
            with _quiet_root_logger():  # open_clip logs the failure too: the one message is ours
                model = open_clip.create_model(model_name, pretrained=tag or None, device=device,
                                               force_quick_gelu=quick_gelu, cache_dir=cache_dir,
                                               weights_only=False)
        except (RuntimeError, OSError, ValueError, ConnectionError) as err:
            raise MissingWeightsError(_missing_weights_message(model_name, tag, cache_dir, err)) from err
        tokenizer = clip_tokenizer(model_name)
        pcfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        mean = tuple(pcfg.get("mean", OPENAI_DATASET_MEAN))
        std = tuple(pcfg.get("std", OPENAI_DATASET_STD))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    return ClipBackbone(name=name, model=model, tokenizer=tokenizer, image_size=image_size,
                        mean=tuple(mean), std=tuple(std))


__all__ = ["ClipBackbone", "MissingWeightsError", "load_clip", "register_backbone", "available_backbones", "COOP_NAMES"]
