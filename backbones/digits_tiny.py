"""`digits-tiny`: a small CLIP pre-trained here, contrastively, on scikit-learn's handwritten digits.

It gives the toolkit a real (not random) CLIP without any download: zero-shot works on the
built-in Digits dataset, and its domain shifts (``DATASET.DIGITS_SHIFT``) leave room for visual
reprogramming. The held-out Digits test images are never used for pre-training.

The weights are built on first use on the CPU, deterministically (fixed seeds, deterministic
algorithms, a fixed thread count), so the same library versions give the same weights on every
machine; they are cached in ``$VR_CACHE_DIR`` (default ``$XDG_CACHE_HOME/vr-toolkit`` or
``~/.cache/vr-toolkit``) under a name holding the recipe, written atomically under a file lock.
"""
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import text_global_pool

from engine.io import CACHE_ENV, CACHE_NAME, atomic_write_bytes, file_lock  # noqa: F401  (CACHE_NAME: tests)
from engine.io import user_cache_dir as default_cache_dir

from .registry import register_backbone

VERSION = "v1"  # bump when the recipe's code changes: the cache file name changes with it
BUILD_THREADS = 2  # results of CPU kernels may depend on the thread count; fix it for the build
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

# Number of pre-training runs in this process (tests check that a cached model is not rebuilt).
PRETRAIN_RUNS = 0


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


def cache_path(recipe: Recipe = DEFAULT_RECIPE, cache_dir: Optional[str] = None) -> str:
    folder = os.path.join(cache_dir or default_cache_dir(), "digits-tiny")
    return os.path.join(folder, f"digits-tiny_{VERSION}_{recipe.tag()}.pt")


def get_tokenizer():
    return open_clip.get_tokenizer(TOKENIZER_MODEL)


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
def _mean_std(device):
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def _affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, size, size), align_corners=False)`` by broadcasting (cheaper)."""
    coords = (torch.arange(size, dtype=theta.dtype, device=theta.device) * 2 + 1) / size - 1
    x, y = coords.view(1, 1, size), coords.view(1, size, 1)
    t = theta.view(-1, 6, 1, 1)
    return torch.stack([t[:, 0] * x + t[:, 1] * y + t[:, 2], t[:, 3] * x + t[:, 4] * y + t[:, 5]], dim=-1)


def to_model_input(small: torch.Tensor, generator: Optional[torch.Generator] = None,
                   augment: bool = False) -> torch.Tensor:
    """(B, C, h, w) images in [0, 1] (C = 1 or 3) -> (B, 3, 224, 224) CLIP-normalised, bicubic upscaling.

    With ``augment``, each image gets a random similarity transform (scale 0.8-1.15, rotation
    +-10 degrees, shift +-10%), drawn from ``generator``; uncovered borders get the paper colour.
    """
    b = small.shape[0]
    if augment:
        u = torch.rand(b, 4, generator=generator)
        scale = 0.8 + 0.35 * u[:, 0]
        angle = (u[:, 1] - 0.5) * (2 * np.pi * 10 / 180)
        shift = (u[:, 2:] - 0.5) * 0.2
    else:
        scale, angle, shift = torch.ones(b), torch.zeros(b), torch.zeros(b, 2)
    # theta maps output to input coordinates: zooming the digit by `scale` divides them by it
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([cos, -sin, shift[:, 0], sin, cos, shift[:, 1]], 1).to(small)
    paper = small[:, :, :1, :1]  # the corner pixel: fills what the transform uncovers
    big = F.grid_sample(small - paper, _affine_grid(theta, IMAGE_SIZE), mode="bicubic", padding_mode="zeros",
                        align_corners=False).add_(paper).clamp_(0, 1)
    mean, std = _mean_std(small.device)
    return (big.expand(-1, 3, -1, -1) - mean) / std


def resize_like_loader(images: np.ndarray) -> torch.Tensor:
    """(N, h, w, 3) uint8 -> (N, 3, 224, 224) CLIP-normalised, resized as the CoOp test transform does
    (PIL bicubic to 224, centre crop, to tensor, normalise): zero-shot numbers match the toolkit's."""
    from PIL import Image

    out = torch.empty(len(images), 3, IMAGE_SIZE, IMAGE_SIZE)
    for i, arr in enumerate(images):
        big = Image.fromarray(arr).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        out[i] = torch.from_numpy(np.asarray(big, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = _mean_std("cpu")
    return (out - mean[0]) / std[0]


def encode_captions(model, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` computed on the tokens up to the longest caption only.

    The text tower is causal and pools at the end-of-text token, so positions after it cannot change
    the result; cutting them makes the training step's text half about five times cheaper.
    """
    n = int((tokens != 0).sum(1).max())
    tokens = tokens[:, :n]
    x = model.token_embedding(tokens) + model.positional_embedding[:n]
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = text_global_pool(model.ln_final(x), tokens, model.text_pool_type,
                         eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


@functools.lru_cache(maxsize=8)
def _rendered(indices: Tuple[int, ...], shift: str) -> np.ndarray:
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


# ---------------------------------------------------------------------------------- determinism
@contextlib.contextmanager
def _deterministic(seed: int, threads: Optional[int] = None):
    """Fixed seeds, deterministic kernels and a fixed thread count; the caller's state is restored."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads or BUILD_THREADS)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
            torch.set_num_threads(old_threads)


# ----------------------------------------------------------------------------------- pretraining
@torch.no_grad()
def _remove_patch_dc(model):
    """Keep every patch-embedding filter at zero mean, so a flat patch embeds to zero.

    Without it the white paper (about +2 after CLIP normalisation) gives every background patch the
    same large embedding; average pooling then makes all images look alike, contrastive training
    sits at the "all captions equally likely" saddle for about a hundred steps and falls back into
    it whenever the learning rate peaks. Held at zero mean (after init and after every step), the
    model learns from the first steps. The model stays a plain CLIP; it is just blind to uniform
    grey offsets of whole patches.
    """
    w = model.visual.conv1.weight
    w -= w.mean(dim=(1, 2, 3), keepdim=True)


def pretrain(recipe: Recipe = DEFAULT_RECIPE, verbose: bool = True, on_epoch=None) -> open_clip.CLIP:
    """Pre-train digits-tiny on the non-test Digits images (CPU); returns the model in eval mode.

    Each step scores a batch of images against all captions (10 digits x 6 templates) with soft
    targets (uniform over the captions of the image's digit), AdamW with a one-cycle schedule.
    ``on_epoch(epoch, model)``, if given, is called after each epoch (for experiments).
    """
    global PRETRAIN_RUNS
    from datasets.digits_data import CLASSNAMES, load_arrays, pretrain_indices

    PRETRAIN_RUNS += 1
    start = time.time()
    with _deterministic(recipe.seed):
        indices = pretrain_indices()
        images = digit_images(indices)[:, :1].contiguous()  # unshifted digits are grey: one channel
        labels = torch.from_numpy(load_arrays()[1][list(indices)].copy())
        model = create_model(recipe)
        _remove_patch_dc(model)
        tokens = get_tokenizer()(captions(CLASSNAMES))
        caption_class = torch.arange(len(CLASSNAMES)).repeat_interleave(len(TEMPLATES))
        targets = (labels[:, None] == caption_class[None]).float()
        targets = targets / targets.sum(1, keepdim=True)
        steps_per_epoch = len(indices) // recipe.batch_size  # drop the last partial batch
        total = steps_per_epoch * recipe.epochs
        if recipe.max_steps:
            total = min(total, recipe.max_steps)
        optim = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=recipe.lr, total_steps=total)
        gen = torch.Generator().manual_seed(recipe.seed)
        model.train()
        step = 0
        for epoch in range(recipe.epochs):
            if step >= total:
                break
            order = torch.randperm(len(indices), generator=gen)
            loss_sum, hits, seen = 0.0, 0, 0
            for b in range(min(steps_per_epoch, total - step)):
                batch = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
                x = to_model_input(images[batch], gen, augment=recipe.augment)
                img = model.encode_image(x, normalize=True)
                txt = F.normalize(encode_captions(model, tokens), dim=-1)
                logits = model.logit_scale.exp() * img @ txt.t()
                loss = -(targets[batch] * logits.log_softmax(1)).sum(1).mean()
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                sched.step()
                _remove_patch_dc(model)
                with torch.no_grad():
                    model.logit_scale.clamp_(0, np.log(100))
                step += 1
                loss_sum += loss.item() * len(batch)
                per_class = logits.detach().view(len(batch), len(CLASSNAMES), len(TEMPLATES)).mean(2)
                hits += per_class.argmax(1).eq(labels[batch]).sum().item()
                seen += len(batch)
            if verbose:
                print(f"digits-tiny: epoch {epoch + 1}/{recipe.epochs} loss {loss_sum / seen:.3f} "
                      f"train accuracy {100.0 * hits / seen:.1f}% ({time.time() - start:.0f}s)", flush=True)
            if on_epoch is not None:
                on_epoch(epoch, model)
                model.train()
    model.eval()
    return model


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


def load_or_build(recipe: Recipe = DEFAULT_RECIPE, cache_dir: Optional[str] = None,
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
