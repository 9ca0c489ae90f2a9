"""`digits-tiny`: a small CLIP pre-trained here, contrastively, on scikit-learn's handwritten digits.

It gives the toolkit a real (not random) CLIP without any download: zero-shot works on the
built-in Digits dataset, and its domain shifts (``DATASET.DIGITS_SHIFT``) leave room for visual
reprogramming. The held-out Digits test images are never used for pre-training.

This module holds the recipe, the model, its evaluation and the cache; the weights are built on first
use by backbones/digits_tiny_pretrain.py (CPU, deterministic: the same library versions give the same
weights on every machine) and cached in ``$VR_CACHE_DIR`` (default ``$XDG_CACHE_HOME/vr-toolkit`` or
``~/.cache/vr-toolkit``) under a name holding the recipe, written atomically under a file lock.
"""
import dataclasses
import functools
import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from engine.io import CACHE_ENV, CACHE_NAME, atomic_write_bytes, file_lock  # noqa: F401  (CACHE_NAME: tests)
from engine.io import user_cache_dir as default_cache_dir

from .registry import register_backbone
from .tokenizers import clip_tokenizer

VERSION = "v1"  # bump when the recipe's code changes (digits_tiny_pretrain.py too): the cache file name changes with it
IMAGE_SIZE = 224
TOKENIZER_MODEL = "ViT-B-16"  # OpenAI's BPE vocabulary, context length 77

# Caption templates of the pre-training; "This is a photo of {}." is deliberately not among them.
TEMPLATES = (
    "a photo of the digit {}.",
    "a handwritten {}.",
    "the number {}.",
    "a drawing of the number {}.",
    "a scan of a handwritten digit {}.",
    "an image of the digit {}.",
)

@dataclass(frozen=True)
class Recipe:
    """What the cached weights depend on; every field goes into the cache file name's hash."""

    width: int = 64
    layers: int = 2
    heads: int = 2
    embed_dim: int = 64
    patch_size: int = 16
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.05
    max_steps: int = 0  # > 0: stop after this many steps (tests)
    augment: bool = True
    seed: int = 0

    def tag(self) -> str:
        key = json.dumps(dataclasses.asdict(self), sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        steps = f"-steps{self.max_steps}" if self.max_steps else ""
        return (f"w{self.width}-l{self.layers}-e{self.epochs}{steps}-b{self.batch_size}"
                f"-lr{self.lr:g}-s{self.seed}-{digest}")


DEFAULT_RECIPE = Recipe()


def cache_path(recipe: Recipe = DEFAULT_RECIPE, cache_dir: str | None = None) -> str:
    folder = os.path.join(cache_dir or default_cache_dir(), "digits-tiny")
    return os.path.join(folder, f"digits-tiny_{VERSION}_{recipe.tag()}.pt")


def get_tokenizer():
    return clip_tokenizer(TOKENIZER_MODEL)


def create_model(recipe: Recipe = DEFAULT_RECIPE) -> open_clip.CLIP:
    """The untrained architecture: a patch-16 ViT at 224 with average pooling and a small text tower."""
    vision = CLIPVisionCfg(layers=recipe.layers, width=recipe.width, head_width=recipe.width // recipe.heads,
                           patch_size=recipe.patch_size, image_size=IMAGE_SIZE, pool_type="avg")
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=recipe.width, heads=recipe.heads,
                       layers=recipe.layers)
    return open_clip.CLIP(embed_dim=recipe.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)


def captions(classnames: Sequence[str], templates: Sequence[str] = TEMPLATES):
    """Every template for every class, class-major: caption k belongs to class k // len(templates)."""
    return [t.format(c) for c in classnames for t in templates]


# ----------------------------------------------------------------------------------------- images
def mean_std(device):
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def resize_like_loader(images: np.ndarray) -> torch.Tensor:
    """(N, h, w, 3) uint8 -> (N, 3, 224, 224) CLIP-normalised, resized as the CoOp test transform does
    (PIL bicubic to 224, centre crop, to tensor, normalise): zero-shot numbers match the toolkit's."""
    from PIL import Image

    out = torch.empty(len(images), 3, IMAGE_SIZE, IMAGE_SIZE)
    for i, arr in enumerate(images):
        big = Image.fromarray(arr).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        out[i] = torch.from_numpy(np.asarray(big, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = mean_std("cpu")
    return (out - mean[0]) / std[0]


@functools.lru_cache(maxsize=8)
def _rendered(indices: tuple[int, ...], shift: str) -> np.ndarray:
    from datasets.digits_data import render

    arr = np.stack([render(i, shift) for i in indices])
    arr.setflags(write=False)
    return arr


def rendered_digits(indices: Sequence[int], shift: str = "none") -> np.ndarray:
    """The dataset's PNG pixels of these sklearn indices, (N, 32, 32, 3) uint8 (read-only, cached)."""
    return _rendered(tuple(int(i) for i in indices), shift)


def digit_images(indices: Sequence[int], shift: str = "none") -> torch.Tensor:
    """Rendered Digits images (exactly the dataset's PNG pixels) as (N, 3, 32, 32) floats in [0, 1]."""
    arr = rendered_digits(indices, shift).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def class_text_features(model, classnames: Sequence[str], templates: Sequence[str] = TEMPLATES):
    """(C, D) normalised class embeddings: the mean over templates, as CLIP's zero-shot recipe does."""
    device = next(model.parameters()).device
    txt = model.encode_text(get_tokenizer()(captions(classnames, templates)).to(device), normalize=True)
    return F.normalize(txt.view(len(classnames), len(templates), -1).mean(1), dim=-1)


@torch.no_grad()
def zero_shot_accuracy(model, images: np.ndarray, labels: Sequence[int], classnames: Sequence[str],
                       templates: Sequence[str] = TEMPLATES, batch_size: int = 100) -> float:
    """Top-1 zero-shot accuracy (%) on (N, h, w, 3) uint8 images, preprocessed as the data loader does."""
    model.eval()
    device = next(model.parameters()).device
    txt = class_text_features(model, classnames, templates)
    labels = torch.as_tensor(np.asarray(labels))
    correct = 0
    for i in range(0, len(images), batch_size):
        x = resize_like_loader(images[i:i + batch_size]).to(device)
        img = model.encode_image(x, normalize=True)
        correct += (img @ txt.t()).argmax(1).cpu().eq(labels[i:i + batch_size]).sum().item()
    return 100.0 * correct / len(images)


def heldout_accuracy(model, templates: Sequence[str] = TEMPLATES, shift: str = "none") -> float:
    """Zero-shot accuracy (%) on the 397 held-out Digits test images (never seen in pre-training)."""
    from datasets.digits_data import CLASSNAMES, load_arrays, split_indices

    test = split_indices()["test"]
    images = rendered_digits(test, shift)
    return zero_shot_accuracy(model, images, load_arrays()[1][list(test)], CLASSNAMES, templates)


def state_dict_hash(model) -> str:
    """SHA-256 over the state dict's names and raw bytes: equal hashes mean identical weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ cache
def _load(path: str, recipe: Recipe):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(recipe)
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def load_or_build(recipe: Recipe = DEFAULT_RECIPE, cache_dir: str | None = None,
                  verbose: bool = True) -> open_clip.CLIP:
    """The cached digits-tiny for ``recipe`` (CPU, eval mode), pre-training and caching it if needed."""
    path = cache_path(recipe, cache_dir)
    if os.path.isfile(path):
        try:
            return _load(path, recipe)
        except Exception as err:  # unreadable or from another layout: rebuild below, under the lock
            if verbose:
                print(f"digits-tiny: cache file {path} is unreadable ({type(err).__name__}: {err}); rebuilding",
                      flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with file_lock(path + ".lock"):
        if os.path.isfile(path):  # another process built it while we waited
            try:
                return _load(path, recipe)
            except Exception:
                pass
        if verbose:
            n = "the full recipe" if recipe == DEFAULT_RECIPE else f"recipe {recipe}"
            print(f"digits-tiny: first use, pre-training a small CLIP on scikit-learn's handwritten digits "
                  f"({n}; about 3 minutes on 2 CPU cores). It will be cached at {path} "
                  f"(set ${CACHE_ENV} to choose the folder).", flush=True)
        from .digits_tiny_pretrain import pretrain

        start = time.time()
        model = pretrain(recipe, verbose=verbose)
        seconds = time.time() - start
        # a short test recipe is not worth the few seconds of evaluation
        acc = heldout_accuracy(model) if not recipe.max_steps else None
        payload = {"state_dict": model.state_dict(), "version": VERSION,
                   "recipe": json.dumps(dataclasses.asdict(recipe), sort_keys=True),
                   "torch": str(torch.__version__), "open_clip": str(open_clip.__version__),
                   "build_seconds": seconds, "heldout_zero_shot": acc}
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write_bytes(path, buf.getvalue())
        if verbose:
            said = "" if acc is None else (f", held-out zero-shot accuracy {acc:.1f}% "
                                           f"(397 unseen test digits, {len(TEMPLATES)} caption templates)")
            print(f"digits-tiny: pre-trained in {seconds:.0f}s{said}; saved to {path}", flush=True)
    return model


@register_backbone("digits-tiny")
def build(device):
    """``MODEL.BACKBONE.NAME digits-tiny``: the cached pre-trained model, moved to ``device``."""
    return load_or_build().to(device), get_tokenizer()
