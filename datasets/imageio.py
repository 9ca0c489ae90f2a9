"""Reading one image: the project's single :func:`engine.imageio.read_image`, re-exported for loaders."""
from engine.imageio import IMAGE_EXTENSIONS, ImageReadError, is_image_name, read_image, unreadable_images  # noqa: F401
