"""Reading one image, with an error that names the file.

The engine's DatasetWrapper calls :func:`read_image`; a corrupt or truncated file then fails with its
path and the fix instead of a bare PIL traceback, also inside DataLoader worker processes (the error
type takes a single message, so PyTorch re-raises it unchanged in the main process).
"""
from PIL import Image


class ImageReadError(OSError):
    """An image file exists but cannot be decoded."""


def read_image(path):
    """Return the image at ``path`` as an RGB ``PIL.Image`` (same result as Dassl's read_image)."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # convert() decodes the whole file, so truncation shows here
    except FileNotFoundError:
        raise FileNotFoundError(f"Image not found: {path}") from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise ImageReadError(
            f"Cannot read image {path}: {type(err).__name__}: {err}. The file is corrupt or not an "
            f"image; replace it (re-download the dataset) or remove it from the split. "
            f"`python -m datasets.check --root DATA NAME` lists every unreadable image."
        ) from None
