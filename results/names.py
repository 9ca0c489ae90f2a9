"""The names and order of the table rows and columns: trainers in METHOD_ORDER, datasets as their loaders
state them (display_name, table_order, aliases, column_key: runs/datasets.json, written from the registry
by ``python -m runs.catalogue``)."""
import os.path as osp

from engine.names import squash
from runs import catalogue

# Display order of the trainers (results.json `method`); names not listed follow, sorted.
METHOD_ORDER = ("ZeroshotCLIP", "VP", "AR", "AttrVR", "DVP_CSE", "DVP_CLS", "CoOp")
ALL_CLASSES = "all"


def ordered(names, preferred, key=lambda n: n):
    """``names`` sorted by their place in ``preferred`` (of ``key(name)``); the others after, by name."""
    rank = {name: i for i, name in enumerate(preferred)}
    return sorted(names, key=lambda n: (rank.get(key(n), len(rank)), str(n)))


def dataset_order():
    """DATASET.NAME of the registered datasets in table order (each loader's table_order; the
    catalogue runs/datasets.json or VR_DATASET_CATALOGUE); the others follow, sorted."""
    rows = catalogue.load_datasets().values()
    return tuple(row.name for row in sorted((r for r in rows if r.table_order is not None),
                                            key=lambda r: r.table_order))


def ordered_datasets(names):
    """Dataset keys (or names) in table order."""
    return ordered(names, dataset_order(), key=canonical_dataset)


def ordered_methods(names):
    """Trainer names, or row labels that start with one ("AR [vit_b16]"), in METHOD_ORDER."""
    return ordered(names, METHOD_ORDER, key=lambda label: str(label).split(" [")[0])


def canonical_dataset(name):
    """DATASET.NAME for a dataset spelled as in results.json, its table name, config name or an alias."""
    key = squash(name)
    for row in catalogue.load_datasets().values():
        if key in {squash(n) for n in (row.name, row.display_name, row.config_name, *row.aliases)}:
            return row.name
    return name


def display_name(name):
    """A dataset's column name in the tables (its loader's display_name; else the name itself)."""
    row = catalogue.load_datasets().get(name)
    return row.display_name if row else name


def dataset_cfg(data):
    """config.DATASET of a results.json mapping ({} when not recorded)."""
    config = data.get("config")
    section = config.get("DATASET") if isinstance(config, dict) else None
    return section if isinstance(section, dict) else {}


def dataset_key(data):
    """The dataset a run used, as configured: DATASET.NAME shown by its display name, plus the value of its
    loader's column_key when not the default ("Digits (tinted)", "ImageFolder (/data/pets)": a path is
    resolved against DATASET.ROOT). Every grouping of results goes through this key."""
    name = data["dataset"]
    row = catalogue.load_datasets().get(name)
    column_key = (row.column_key if row else None) or {}
    shown = display_name(name)
    if not column_key:
        return shown
    section = dataset_cfg(data)
    default = column_key.get("default")
    value = section.get(column_key["key"], default)
    if value in (None, default):
        return shown
    if column_key.get("path"):
        value = osp.normpath(osp.join(osp.expanduser(str(section.get("ROOT") or "")), osp.expanduser(str(value))))
    return f"{shown} ({value})"


def classes_of(data):
    """The class subset a run evaluated (DATASET.SUBSAMPLE_CLASSES: all, base or new)."""
    return str(dataset_cfg(data).get("SUBSAMPLE_CLASSES") or ALL_CLASSES).lower()


def same_backbone(a, b):
    """ViT-B/16, ViT-B-16 and vit_b16 name the same backbone."""
    return squash(a) == squash(b)
