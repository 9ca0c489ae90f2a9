"""The public datasets by name: config name (caltech101), class name (Caltech101), description key."""
from engine.names import close_matches

from .caltech101 import Caltech101
from .dtd import DescribableTextures
from .eurosat import EuroSAT
from .fgvc_aircraft import FGVCAircraft
from .food101 import Food101
from .imagenet import ImageNet
from .imagenet_variants import ImageNetA, ImageNetR, ImageNetSketch, ImageNetV2
from .oxford_flowers import OxfordFlowers
from .oxford_pets import OxfordPets
from .resisc45 import Resisc45
from .stanford_cars import StanfordCars
from .sun397 import SUN397
from .ucf101 import UCF101

LOADERS = (Caltech101, DescribableTextures, EuroSAT, FGVCAircraft, Food101, OxfordFlowers, OxfordPets,
           StanfordCars, SUN397, UCF101, Resisc45, ImageNet, ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR)
NAMES = tuple(cls.config_name for cls in LOADERS)


def find_loader(name):
    """The loader class for a config name or a class name (case-insensitive)."""
    by_name = {}
    for cls in LOADERS:
        by_name[cls.config_name.lower()] = cls
        by_name[cls.__name__.lower()] = cls
    cls = by_name.get(str(name).lower())
    if cls is None:
        hint = close_matches(name, by_name, n=1)
        did_you_mean = f" (do you mean {by_name[hint[0]].config_name}?)" if hint else ""
        raise ValueError(f"Unknown dataset {name!r}{did_you_mean}; choose from: {', '.join(NAMES)}.")
    return cls


def descriptions_key(cfg):
    """The description-file key of the configured dataset: DATASET.DESCRIPTIONS_KEY, else the loader's
    published key (ImageFolder: its folder's name), else DATASET.NAME lower-cased."""
    from engine import DATASET_REGISTRY

    key = cfg.DATASET.get("DESCRIPTIONS_KEY", "")
    if key:
        return key
    name = cfg.DATASET.NAME
    if name == "ImageFolder":
        from .imagefolder import checked_folder_descriptions_key

        return checked_folder_descriptions_key(cfg.DATASET.IMAGEFOLDER_DIR)
    cls = DATASET_REGISTRY.get(name) if name in DATASET_REGISTRY.registered_names() else None
    return getattr(cls, "descriptions_key", "") or name.lower()
