"""`digits-tiny`: a small CLIP pre-trained here, contrastively, on scikit-learn's handwritten digits.

It gives the toolkit a real (not random) CLIP without any download: zero-shot works on the
built-in Digits dataset, and its domain shifts (``DATASET.DIGITS_SHIFT``) leave room for visual
reprogramming. The held-out Digits test images are never used for pre-training.

This module holds the cache (the recipe, the model and its evaluation: digits_tiny_model.py); the weights are
built on first use by backbones/digits_tiny_pretrain.py (CPU, deterministic: the same library versions give the same
weights on every machine) and cached in ``$VR_CACHE_DIR`` (default ``$XDG_CACHE_HOME/vr-toolkit`` or
``~/.cache/vr-toolkit``) under a name holding the recipe, written atomically under a file lock.
"""
import dataclasses
import io
import json
import os
import time

import open_clip
import torch

from engine.io import CACHE_ENV, CACHE_NAME, atomic_write_bytes, file_lock  # noqa: F401  (CACHE_NAME: tests)
from engine.io import user_cache_dir as default_cache_dir

from .digits_tiny_model import (  # noqa: F401  (the recipe, model and evaluation, imported from here too)
    DEFAULT_RECIPE,
    IMAGE_SIZE,
    TEMPLATES,
    TOKENIZER_MODEL,
    Recipe,
    captions,
    class_text_features,
    create_model,
    digit_images,
    get_tokenizer,
    heldout_accuracy,
    mean_std,
    rendered_digits,
    resize_like_loader,
    state_dict_hash,
    zero_shot_accuracy,
)
from .registry import register_backbone

VERSION = "v1"  # bump when the recipe's code changes (digits_tiny_pretrain.py too): the cache file name changes with it


def cache_path(recipe: Recipe = DEFAULT_RECIPE, cache_dir: str | None = None) -> str:
    folder = os.path.join(cache_dir or default_cache_dir(), "digits-tiny")
    return os.path.join(folder, f"digits-tiny_{VERSION}_{recipe.tag()}.pt")


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
