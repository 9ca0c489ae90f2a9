"""Named CLIP builders that are not plain open_clip pretrained tags (test-tiny, digits-tiny, ...)."""
from collections.abc import Callable

# name -> builder(device: torch.device) -> (open_clip CLIP model, tokenizer)
BACKBONE_BUILDERS: dict[str, Callable] = {}


def register_backbone(name: str):
    """Decorator: make ``MODEL.BACKBONE.NAME name`` build a model with the decorated function."""

    def wrap(fn):
        if name in BACKBONE_BUILDERS:
            raise KeyError(f'A backbone named "{name}" is already registered')
        BACKBONE_BUILDERS[name] = fn
        return fn

    return wrap
