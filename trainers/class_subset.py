"""Which rows of a trained per-class head a dataset's classes are: a trained run's recorded class identities
(``run.json`` / every checkpoint's ``class_ids``, engine/class_ids.py) matched to the evaluated dataset's.

Used where a head learned per class (TaskRes's residual, a linear probe, Tip-Adapter's cache values...) is
evaluated on a subset of its training classes, e.g. ImageNet -> ImageNet-A / -R (200 of the 1,000): the
head is built for the trained classes and scored on the rows of the evaluated ones (the code of TaskRes
subsets the rows of T and X the same way). Classes are matched by their id (the WordNet id for ImageNet
and its variants), never by display name: ImageNet has two classes named 'missile'.
"""
from __future__ import annotations

from typing import Any

from engine.class_ids import class_ids

from .evaluated_run import evaluated_checkpoint
from .run_record import CheckpointError

POLICY = ("subset of the training classes: the trained head restricted to the evaluated classes' rows "
          "(matched by {kind})")


def _named(ids, names, limit=5):
    shown = ", ".join(f"{c} '{n}'" for c, n in list(zip(ids, names, strict=True))[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def matched_rows(record: dict[str, Any], dataset: Any, path: str) -> list[int] | None:
    """For each evaluated label, the row (label) of the same class in the training run of ``record``; None
    when the evaluated dataset has no class identity (names decide, as before). A class the run was not
    trained on, a class whose name differs from the trained one, or a run that records no identities (older
    code) is a CheckpointError naming the classes."""
    evaluated = class_ids(dataset)
    if evaluated is None:
        return None
    ids, names, dataset_name = evaluated["ids"], list(dataset.classnames), type(dataset).__name__
    saved = record.get("class_ids")
    if not saved:
        if list(record.get("classnames") or []) == names:
            return None  # same names: a run recorded before class ids loads as before
        raise CheckpointError(
            f"{path} records no class identities (written before runs recorded them), so {dataset_name}'s "
            f"{len(ids)} classes ({evaluated['kind']}) cannot be matched to its trained classes. Train the run "
            f"again with this code.")
    if saved.get("kind") != evaluated["kind"]:
        raise CheckpointError(
            f"{path} identifies its classes by {saved.get('kind')}, {dataset_name} by {evaluated['kind']}: "
            f"its classes cannot be matched. Evaluate it on a dataset of the same family.")
    trained_ids, trained_names = list(saved["ids"]), list(record["classnames"])
    rows = {c: t for t, c in enumerate(trained_ids)}
    unseen = [e for e, c in enumerate(ids) if c not in rows]
    trained_on = (f"the {len(trained_ids)} classes the run of {path} was trained on "
                  f"({record.get('dataset', {}).get('NAME', '?')}, matched by {evaluated['kind']})")
    if unseen:
        raise CheckpointError(
            f"{len(unseen)} of {dataset_name}'s {len(ids)} classes are not among {trained_on}: "
            f"{_named([ids[e] for e in unseen], [names[e] for e in unseen])}. A per-class head has no rows for "
            f"them: evaluate it on its training classes or a subset of them.")
    renamed = [e for e, c in enumerate(ids) if trained_names[rows[c]] != names[e]]
    if renamed:
        e = renamed[0]
        raise CheckpointError(
            f"{dataset_name}'s class {ids[e]} is named '{names[e]}', but '{trained_names[rows[ids[e]]]}' in "
            f"{trained_on} ({len(renamed)} such class(es)): the two datasets' class name files differ. Use "
            f"the training dataset's classnames.txt for both.")
    return [rows[c] for c in ids]


def class_subset(record: dict[str, Any] | None, dataset: Any, path: str) -> dict[str, Any] | None:
    """What results.json records when ``dataset``'s classes are a subset of (or reorder) the trained ones:
    matched_by, trained / evaluated counts, the rows and the evaluated class ids; None for the same classes
    in the same order, or when either side has no class identity."""
    if not record:
        return None
    rows = matched_rows(record, dataset, path)
    trained = list(record.get("classnames") or [])
    if rows is None or rows == list(range(len(trained))):
        return None
    kind = record["class_ids"]["kind"]
    return {"matched_by": kind, "trained": len(trained), "evaluated": len(rows), "rows": rows,
            "class_ids": [record["class_ids"]["ids"][t] for t in rows], "policy": POLICY.format(kind=kind)}


def head_run(cfg: Any, class_transfer: str) -> tuple[str, int]:
    """(dataset name, shots) a per-class head (no ``class_transfer`` policy) is built for: while the trainer of
    ``--eval-only --model-dir`` is built, its checkpoint's training run (the head as trained: ImageNet's
    templates on ImageNet-A); otherwise this run's."""
    _, record = evaluated_checkpoint()
    if record and not class_transfer:
        return (str(record.get("dataset", {}).get("NAME") or cfg.DATASET.NAME),
                int(record.get("shots", cfg.DATASET.NUM_SHOTS)))
    return str(cfg.DATASET.NAME), int(cfg.DATASET.NUM_SHOTS)


def check_same_subset(subset: dict[str, Any] | None, record: dict[str, Any], dataset: Any, path: str) -> None:
    """Raise unless the checkpoint at ``path`` gives ``dataset`` the rows ``subset`` was built with (None: the
    trained classes in their order): each model's checkpoint is checked, also where the class names agree
    (ImageNet's two 'missile' classes in the other order are another class set)."""
    built = subset["rows"] if subset else None
    found = class_subset(record, dataset, path)
    if (found["rows"] if found else None) != built:
        what = (f"by class id the evaluated classes are its rows {found['rows'][:10]}" if found else
                "it was trained on the evaluated classes in their order")
        raise CheckpointError(
            f"{path}: {what}, but the model was built for "
            f"{'rows ' + str(built[:10]) if built else 'the evaluated classes in their order'} (matched by "
            f"name). Evaluate it on the classes it was trained on, in their order.")
