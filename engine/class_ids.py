"""Stable class identities of a loaded dataset, in label order: what matches the classes of two datasets
(an ImageNet run evaluated on ImageNet-A's 200 classes) without their display names, which may repeat
(ImageNet has two 'missile' classes) or be edited.

A loader gives its classes an identity by setting ``class_id_kind`` (what the ids are, e.g. the WordNet id)
and defining ``class_id(impath)``: the id of the class an image belongs to (ImageNet: its class folder).
Loaders without one give ``None``: their runs are matched by class names only.
"""
from collections import Counter


def class_ids(dataset):
    """``{"kind": ..., "ids": [id of label 0, label 1, ...]}`` of a loaded dataset, or None (no identity).
    Each label's id is read from its images; a label with two ids or none, or two labels with one id, is an
    error naming them (the loader's classes are inconsistent)."""
    kind = str(getattr(dataset, "class_id_kind", "") or "")
    if not kind:
        return None
    cached = getattr(dataset, "_class_ids", None)
    if cached is not None:
        return {"kind": kind, "ids": list(cached)}
    found = {}
    for item in (*dataset.train_x, *(dataset.val or []), *dataset.test):
        cid = str(dataset.class_id(item.impath))
        if found.setdefault(item.label, cid) != cid:
            raise ValueError(f"Label {item.label} of {type(dataset).__name__} holds images of two classes "
                             f"({kind} {found[item.label]} and {cid}, e.g. {item.impath}).")
    missing = [y for y in range(dataset.num_classes) if y not in found]
    if missing:
        raise ValueError(f"Labels {missing[:5]} of {type(dataset).__name__} have no image, so their {kind} is "
                         f"unknown.")
    ids = [found[y] for y in range(dataset.num_classes)]
    twice = sorted(c for c, n in Counter(ids).items() if n > 1)
    if twice:
        raise ValueError(f"{type(dataset).__name__} gives the {kind} {twice[:5]} to more than one label.")
    dataset._class_ids = ids
    return {"kind": kind, "ids": list(ids)}
