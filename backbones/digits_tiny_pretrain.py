"""Pre-training `digits-tiny` (backbones/digits_tiny.py holds its recipe, model and cache; this module
is imported only when the cache has no model for a recipe).

Contrastive training on the non-test Digits images, on the CPU, deterministically (fixed seeds,
deterministic algorithms, a fixed thread count), so the same library versions give the same weights on
every machine.
"""
import contextlib
import time

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool

from .digits_tiny_model import (
    DEFAULT_RECIPE,
    IMAGE_SIZE,
    TEMPLATES,
    Recipe,
    captions,
    create_model,
    digit_images,
    get_tokenizer,
    mean_std,
)

BUILD_THREADS = 2  # results of CPU kernels may depend on the thread count; fix it for the build

# Number of pre-training runs in this process (tests check that a cached model is not rebuilt).
PRETRAIN_RUNS = 0


# ----------------------------------------------------------------------------------------- images
def _affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, size, size), align_corners=False)`` by broadcasting (cheaper)."""
    coords = (torch.arange(size, dtype=theta.dtype, device=theta.device) * 2 + 1) / size - 1
    x, y = coords.view(1, 1, size), coords.view(1, size, 1)
    t = theta.view(-1, 6, 1, 1)
    return torch.stack([t[:, 0] * x + t[:, 1] * y + t[:, 2], t[:, 3] * x + t[:, 4] * y + t[:, 5]], dim=-1)


def to_model_input(small: torch.Tensor, generator: torch.Generator | None = None,
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
    mean, std = mean_std(small.device)
    return (big.expand(-1, 3, -1, -1) - mean) / std


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


# ---------------------------------------------------------------------------------- determinism
@contextlib.contextmanager
def _deterministic(seed: int, threads: int | None = None):
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
