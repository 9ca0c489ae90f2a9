"""CoOp-style dataset loaders, registered in the engine's DATASET_REGISTRY by class name.

Importing this package registers every loader and the dataset config keys. Shared pieces for writing
a loader: :mod:`datasets.base` (the loading flow), :mod:`datasets.splits` (split files and CoOp's
split rules), :mod:`datasets.fewshot_cache` (few-shot step with CoOp's cache), :mod:`datasets.subsample`
(base/new classes), :mod:`datasets.imageio` (read_image with a clear error). Commands:
``python -m datasets.download NAME --root DATA`` and ``python -m datasets.check --root DATA [NAME ...]``.
"""
import importlib
import os

from . import catalog, config
from .catalog import descriptions_key, find_loader, registered_loaders
from .imagefolder import ImageFolder

__all__ = ["LOADERS", "NAMES", "ImageFolder", "descriptions_key", "find_loader", "registered_loaders"]

# loaders written elsewhere in this package (e.g. digits.py) register themselves when imported
for _module in ("digits", "mnist"):
    if os.path.exists(os.path.join(os.path.dirname(__file__), f"{_module}.py")):
        importlib.import_module(f"{__name__}.{_module}")


def __getattr__(name):
    # LOADERS / NAMES (the public loaders, see datasets.catalog) as registered now, plugins included.
    if name in ("LOADERS", "NAMES"):
        return getattr(catalog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
