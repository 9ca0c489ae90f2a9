"""`digits-tiny`'s recipe, architecture and evaluation: what the pre-training (digits_tiny_pretrain.py), the
cache (digits_tiny.py) and the tests share, with no dependency on either."""
import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from .tokenizers import clip_tokenizer

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
