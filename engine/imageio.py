"""Reading one image, for the whole project (data loaders, caches, datasets.check, predict).

* A corrupt, truncated or non-image file fails with its path and the fix, also inside DataLoader worker
  processes (the error type takes a single message, so PyTorch re-raises it in the main process).
* 16-bit and 32-bit integer images (PIL modes ``I;16*`` and ``I``: 16-bit PNG, TIFF) are scaled to 8 bits
  by their bit depth; PIL's ``convert("RGB")`` clips them, which turns almost every pixel white. Float
  images (mode ``F``) have no defined range and are refused.
* An image above PIL's decompression-bomb limit names the file and how to allow it:
  ``$VR_MAX_IMAGE_PIXELS`` (a pixel count, or 0 for no limit) raises the limit for trusted data.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from PIL import Image

MAX_PIXELS_ENV = "VR_MAX_IMAGE_PIXELS"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
FIX = ("replace it (re-download the dataset) or remove it from the split; "
       "`python -m datasets.check --root DATA NAME` lists every unreadable image")
PIL_DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS


class ImageReadError(OSError):
    """An image file exists but cannot be decoded (or not into 8-bit RGB)."""


def is_image_name(name: str) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def apply_pixel_limit(environ: dict[str, str] | None = None) -> None:
    """Set PIL's decompression-bomb limit from ``$VR_MAX_IMAGE_PIXELS`` (unset: PIL's default)."""
    raw = (os.environ if environ is None else environ).get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        Image.MAX_IMAGE_PIXELS = PIL_DEFAULT_MAX_PIXELS
        return
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels (0 means no limit).") from None
    Image.MAX_IMAGE_PIXELS = None if value <= 0 else value


def _to_8bit(img, path):
    """``img`` as an 8-bit mode that convert("RGB") maps faithfully."""
    if img.mode.startswith("I;16") or img.mode == "I":
        import numpy as np

        arr = np.asarray(img)
        if arr.size and arr.min() < 0:
            raise ImageReadError(f"Cannot read image {path}: it holds negative {img.mode} pixel values, which have "
                                 f"no 8-bit equivalent; convert it to an 8-bit image (e.g. PNG/JPEG) first.")
        # I;16: 16 bits; I (32-bit integers): 16 bits when the values fit (how PIL opens some 16-bit files)
        bits = 16 if img.mode.startswith("I;16") or not arr.size or arr.max() <= 65535 else 32
        scaled = arr.astype(np.float64) / (2 ** bits - 1) * 255.0
        return Image.fromarray(np.rint(scaled).astype(np.uint8))
    if img.mode == "F":
        raise ImageReadError(f"Cannot read image {path}: it is a floating-point ({img.mode}) image with no defined "
                             f"range; convert it to an 8-bit image (e.g. PNG/JPEG) first.")
    return img


def read_image(path: str) -> Image.Image:
    """Return the image at ``path`` as an 8-bit RGB ``PIL.Image`` (Dassl's read_image, with the rules above)."""
    apply_pixel_limit()
    try:
        with Image.open(path) as img:
            return _to_8bit(img, path).convert("RGB")  # convert() decodes the whole file: truncation shows here
    except FileNotFoundError:
        raise FileNotFoundError(f"Image not found: {path}") from None
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"Cannot read image {path}: {err} If the file is trusted, allow larger images with "
            f"{MAX_PIXELS_ENV}=<pixels> (or {MAX_PIXELS_ENV}=0 for no limit); else remove it from the dataset."
        ) from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise ImageReadError(f"Cannot read image {path}: {type(err).__name__}: {err}. The file is corrupt or not "
                             f"an image; {FIX}.") from None


def unreadable_images(paths: Iterable[str]) -> list[tuple[str, str]]:
    """``[(path, reason)]`` for the files among ``paths`` whose header PIL cannot read (fast: no decoding)."""
    apply_pixel_limit()
    bad = []
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.mode == "F":
                    bad.append((path, "floating-point image"))
        except Image.DecompressionBombError:
            bad.append((path, f"larger than the decompression-bomb limit (set {MAX_PIXELS_ENV} to allow it)"))
        except Exception as err:
            bad.append((path, f"{type(err).__name__}: {err}"))
    return bad
