"""One Record per usable results.json under an output root; every file left out is named with the reason.

Left out: a file that does not parse or lacks a key the tables need, an untrained result (``"untrained":
true``: --eval-only of a learning method without --model-dir, never the method's number) and a second
result for the same cell, seed and settings (a duplicate: the first path in sorted order is used). A
result whose hyper-parameters were chosen on the test images (any nested ``"test_selected": true``) is
kept and marked. Reading needs no torch.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import sys
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TextIO

from runs import layout, protocol_layout

from . import identity, names
from .record import Record

RESULTS_NAME = layout.RESULTS
METRICS = ("accuracy", "macro_f1")


class BadResult(ValueError):
    """A results.json that cannot be used; the message says why."""


def find_results(root: str) -> list[str]:
    """All results.json paths under root, sorted (deterministic duplicate handling)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if RESULTS_NAME in filenames:
            found.append(osp.join(dirpath, RESULTS_NAME))
    return sorted(found)


def variant_of(path: str) -> str | None:
    """Trainer config name from the run layout .../<CFG>_<SHOTS>shots/seed<S>/results.json."""
    run = layout.parse_run_dir(osp.abspath(path))
    return run.cfg if run else None


def _as_int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadResult(f"'{key}' is {value!r}, expected an integer")
    return int(value)


def is_test_selected(data: Any) -> bool:
    """Whether any mapping inside a results.json says ``"test_selected": true`` (a feature baseline
    whose hyper-parameters were chosen on the test images: trainers/features.py hp_record)."""
    if isinstance(data, dict):
        return data.get("test_selected") is True or any(is_test_selected(v) for v in data.values())
    if isinstance(data, list):
        return any(is_test_selected(v) for v in data)
    return False


def load_result(path: str, metric: str) -> Record:
    """One Record from a results.json, or BadResult with the reason."""
    data, why = layout.read_results_file(path)
    if data is None:
        raise BadResult(why)
    # Both headline metrics are part of every finished run's results.json; a file without
    # one of them is incomplete whichever metric is tabulated.
    needed = ("method", "dataset", "backbone", "shots", "seed") + METRICS
    missing = [key for key in needed if key not in data]
    if missing:
        raise BadResult("incomplete: missing key(s) " + ", ".join(missing))
    for key in ("method", "dataset", "backbone"):
        if not isinstance(data[key], str) or not data[key]:
            raise BadResult(f"'{key}' is {data[key]!r}, expected a non-empty string")
    for key in METRICS:
        value = data[key]
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not 0 <= value <= 100):
            raise BadResult(f"'{key}' is {value!r}, expected a percentage in [0, 100]")
    if data.get("untrained") is True:
        raise BadResult('untrained ("untrained": true: --eval-only without --model-dir evaluated the '
                        "initial parameters), not the method's result; evaluate the trained run with "
                        "--model-dir")
    return Record(data["method"], variant_of(path), names.dataset_key(data), names.classes_of(data),
                  data["backbone"], _as_int(data, "shots"), _as_int(data, "seed"),
                  float(data[metric]), path, is_test_selected(data),
                  identity.frozen(identity.settings_of(data)), "", queries_of(data))


def queries_of(data: dict[str, Any]) -> int | None:
    """Training image queries a black-box run recorded, or None."""
    value = (data.get("black_box") or {}).get("train_image_queries")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def column_of(rec: Record) -> str:
    """The few-shot table's column of a record: its dataset key, with the class subset unless all."""
    return rec.dataset if rec.classes == names.ALL_CLASSES else f"{rec.dataset} [{rec.classes}]"


def is_transfer_test(rec: Record) -> bool:
    """A cross-dataset test of scripts/xd.sh: a model trained on ImageNet, tested on rec.dataset."""
    return protocol_layout.protocol_dir_of(rec.path) == protocol_layout.XD_TEST


def cell_key(rec: Record) -> tuple:
    """What makes two results the same table cell and seed (their settings aside)."""
    return (rec.method, rec.variant, names.canonical_dataset(rec.dataset), rec.classes, rec.backbone,
            rec.shots, rec.seed, is_transfer_test(rec))


def describe_cell(rec: Record) -> str:
    """A cell named for messages: method, column, shots, backbone."""
    where = " (cross-dataset test)" if is_transfer_test(rec) else ""
    return f"{rec.method}{f' [{rec.variant}]' if rec.variant else ''}, {column_of(rec)}{where}, " \
           f"{rec.shots} shots, {rec.backbone}"


def collect(root: str, metric: str, err: TextIO | None = None,
            duplicates: list[tuple[str, str]] | None = None) -> list[Record]:
    """Usable records under root; every skipped file is reported on err (default stderr).

    Two results for one cell, seed and settings are reported with both paths; the first (sorted) path is
    used and the other is appended to ``duplicates`` (a list) when given. Results of one cell and seed with
    different settings are both kept (they are not duplicates: see identity.split_settings).
    """
    err = err or sys.stderr
    records, seen = [], {}
    for path in find_results(root):
        try:
            rec = load_result(path, metric)
        except BadResult as exc:
            print(f"warning: skipping {path}: {exc}", file=err)
            continue
        key = cell_key(rec) + (rec.settings,)
        if key in seen:
            print(f"warning: duplicate result: {path} is the same method/dataset/classes/backbone/"
                  f"shots/seed and settings as {seen[key]} ({rec.method}, {column_of(rec)}, {rec.shots} "
                  f"shots, seed {rec.seed}); using {seen[key]}", file=err)
            if duplicates is not None:
                duplicates.append((path, seen[key]))
            continue
        seen[key] = path
        records.append(rec)
    return records


def duplicate_notes(duplicates: list[tuple[str, str]] | None) -> tuple[str, ...]:
    """The note printed under a table when results were left out as duplicates."""
    if not duplicates:
        return ()
    note = (f"{len(duplicates)} duplicate result(s) left out (same cell, seed and settings as another "
            f"results.json; listed on stderr), e.g. {duplicates[0][0]}")
    return (note,)


def table_row(rec: Record) -> tuple[int, str, str, str | None]:
    """A table row (before any split by settings): shots, backbone, method, trainer config."""
    return rec.shots, rec.backbone, rec.method, rec.variant


def table_cell(rec: Record) -> tuple[str, bool]:
    """A table cell within its row: the column (dataset key and class subset), cross-dataset test or not."""
    return column_of(rec), is_transfer_test(rec)


SPLIT_FLAG = "--split-conflicts"
CONFLICT_FIX = (f"rerun the odd seeds with the same settings, move one setting's runs out of this root, or pass "
                f"{SPLIT_FLAG} to show each setting as its own row")


def settle_settings(records: Iterable[Record], split: bool, err: TextIO | None = None,
                    row_of: Callable[[Record], Hashable] = table_row,
                    cell_of: Callable[[Record], Hashable] = table_cell) -> tuple[list[Record] | None, tuple[str, ...]]:
    """(records, notes): the records with their setting labels (identity.split_settings over these rows and
    cells), and the note under a table that split some; (None, ()) after printing every cell that mixes
    settings (an ERROR naming keys, values and folders) on err when ``split`` is false."""
    err = err or sys.stderr
    labelled, conflicts = identity.split_settings(records, row_of, cell_of, describe_cell)
    if not conflicts:
        return labelled, ()
    if not split:
        print(identity.conflict_message(conflicts, CONFLICT_FIX), file=err)
        return None, ()
    print(f"note: {len(conflicts)} cell(s) hold results of different settings; each setting is its own row "
          f"({SPLIT_FLAG}): " + "; ".join(f"{c.where}: {', '.join(c.keys)}" for c in conflicts), file=err)
    return labelled, (f"rows labelled [KEY=VALUE, ...] hold results whose settings differ in those keys "
                      f"({SPLIT_FLAG}); they are never averaged together",)
