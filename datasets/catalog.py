"""The datasets by name, read from the engine's dataset registry: each loader class declares its facts.

A loader (a class registered with ``@DATASET_REGISTRY.register()``) states, as class attributes, what
the rest of the toolkit needs to know about its dataset; :data:`FACTS` lists them with their defaults:

    config_name        configs/datasets/<config_name>.yaml; NAME of datasets.download / datasets.check
    descriptions_key   <key> of the published description files (<key>_des.json, ...)
    zeroshot_template  the template of TEMPLATES coop ("{}" = class name; CoOp's per-dataset ones)
    display_name       its column in the result tables ("" = the class name, i.e. DATASET.NAME)
    table_order        its place among the table columns (lower first; None: after those, by name)
    aliases            other spellings of it in results or papers (matched case- and "_"-insensitively)
    source             datasets.sources.Source: what ``python -m datasets.download`` fetches (None: nothing)
    test_only          True: evaluation only (train.py refuses to train on it)
    dvp_cls_v          DVP-CLS's number of prompts v, as in its reference configuration (None: V_DEFAULT)
    column_key         {"key": K, "default": D[, "path": True]}: results whose DATASET.K differ are separate
                       table columns, "<display_name> (<value>)" unless the value is D (a path: resolved
                       against DATASET.ROOT); None: one column per dataset

The public datasets are the registered loaders with a download source. Stdlib-only scripts read the
same facts from runs/datasets.json (``python -m runs.catalogue`` writes it; a test checks it is current).
"""
import importlib

from engine.names import close_matches

# The built-in loaders, in the order the commands list them (each module registers its loader).
BUILTIN_MODULES = ("caltech101", "dtd", "eurosat", "fgvc_aircraft", "food101", "oxford_flowers", "oxford_pets",
                   "stanford_cars", "sun397", "ucf101", "resisc45", "imagenet", "imagenet_variants")
for _module in BUILTIN_MODULES:
    importlib.import_module(f"{__package__}.{_module}")

DEFAULT_TEMPLATE = "a photo of a {}."  # any dataset whose loader states none (e.g. ImageFolder)
FACTS = {"config_name": "", "descriptions_key": "", "zeroshot_template": DEFAULT_TEMPLATE, "display_name": "",
         "table_order": None, "aliases": (), "source": None, "test_only": False, "dvp_cls_v": None,
         "column_key": None}


def fact(cls, name):
    """A loader's fact ``name`` (see :data:`FACTS`), its default when the class does not state it."""
    value = getattr(cls, name, None)
    if value in (None, "", ()):
        value = FACTS[name]
    if name == "display_name":
        return value or cls.__name__
    return value


def registered_loaders():
    """Every registered dataset loader with a config name (built-in and plugin), in registry order."""
    from engine import DATASET_REGISTRY

    classes = (DATASET_REGISTRY.get(name) for name in DATASET_REGISTRY.registered_names())
    return tuple(cls for cls in classes if fact(cls, "config_name"))


def public_loaders():
    """The registered loaders that ``python -m datasets.download`` can fetch (they have a source)."""
    return tuple(cls for cls in registered_loaders() if fact(cls, "source") is not None)


def public_names():
    return tuple(cls.config_name for cls in public_loaders())


def __getattr__(name):
    # LOADERS / NAMES: the public loaders and their config names, as they are registered now.
    if name == "LOADERS":
        return public_loaders()
    if name == "NAMES":
        return public_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_loader(name, loaders=None):
    """The loader class for a config name or a class name (case-insensitive); by default among the
    public loaders."""
    loaders = public_loaders() if loaders is None else loaders
    by_name = {}
    for cls in loaders:
        by_name[cls.config_name.lower()] = cls
        by_name[cls.__name__.lower()] = cls
    cls = by_name.get(str(name).lower())
    if cls is None:
        hint = close_matches(name, by_name, n=1)
        did_you_mean = f" (do you mean {by_name[hint[0]].config_name}?)" if hint else ""
        raise ValueError(f"Unknown dataset {name!r}{did_you_mean}; choose from: "
                         f"{', '.join(c.config_name for c in loaders)}.")
    return cls


def loader_of(dataset_name):
    """The registered loader class of a DATASET.NAME, or None."""
    from engine import DATASET_REGISTRY

    return DATASET_REGISTRY.get(dataset_name) if dataset_name in DATASET_REGISTRY.registered_names() else None


def zeroshot_template(dataset_name):
    """The zero-shot template of a DATASET.NAME (TEMPLATES coop): its loader's, else the default."""
    cls = loader_of(dataset_name)
    return fact(cls, "zeroshot_template") if cls is not None else DEFAULT_TEMPLATE


def dvp_cls_v(descriptions_key):
    """DVP-CLS's v of the loader whose description key this is, or None (as before: v is per key)."""
    for cls in registered_loaders():
        if fact(cls, "descriptions_key") == descriptions_key and fact(cls, "dvp_cls_v") is not None:
            return int(cls.dvp_cls_v)
    return None


def record(cls):
    """The facts of a loader that stdlib-only scripts need (one row of runs/datasets.json)."""
    return {"name": cls.__name__, "config_name": cls.config_name, "display_name": fact(cls, "display_name"),
            "table_order": fact(cls, "table_order"), "aliases": list(fact(cls, "aliases")),
            "descriptions_key": fact(cls, "descriptions_key"), "test_only": bool(fact(cls, "test_only")),
            "column_key": fact(cls, "column_key")}


def descriptions_key(cfg):
    """The description-file key of the configured dataset: DATASET.DESCRIPTIONS_KEY, else the loader's
    published key (ImageFolder: its folder's name), else DATASET.NAME lower-cased."""
    key = cfg.DATASET.get("DESCRIPTIONS_KEY", "")
    if key:
        return key
    name = cfg.DATASET.NAME
    if name == "ImageFolder":
        from .imagefolder import checked_folder_descriptions_key

        return checked_folder_descriptions_key(cfg.DATASET.IMAGEFOLDER_DIR)
    cls = loader_of(name)
    return getattr(cls, "descriptions_key", "") or name.lower()
