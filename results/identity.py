"""What a result was made with, and the rule that a cell never averages two different things.

A result's settings are its recorded config (results.json ``config``, flattened to dotted keys) without
SEED and the keys that never change a run (engine/protocol_keys.py PROTOCOL_EXCLUDED), plus its recorded
data identity (results.json ``data_identity``: split, classes, counts; compared key by key, whatever the
keys are) without the keys that differ between seeds by design (PER_SEED_DATA_KEYS: the few-shot draw
is the seed's own). A result without a data identity is grouped only with others without one.
Seeds whose settings differ (another learning rate, a yaml edited between seeds, another split) are never
one cell: :func:`split_settings` finds every such cell, so the caller can stop with :func:`conflict_message`
or, when asked, show each setting as its own row, labelled by the keys that differ
("AR [OPTIM.LR=1.0, OPTIM.MAX_EPOCH=5]").
"""
from __future__ import annotations

import json
import os.path as osp
from collections import defaultdict, namedtuple
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.data_identity import IDENTITY_KEY as DATA_IDENTITY
from engine.data_identity import PER_SEED_KEYS as PER_SEED_DATA_KEYS
from engine.protocol_keys import is_excluded

NOT_RECORDED = "not recorded"
ABSENT = "<absent>"
NOT_COMPARED = frozenset({"SEED"})  # a cell's seeds differ in it by design

# One cell that holds results of different settings: ``where`` names the cell, ``keys`` the differing keys,
# ``groups`` [(the differing keys' values, [record, ...])] one per setting.
if TYPE_CHECKING:
    from .record import Record

Conflict = namedtuple("Conflict", "where keys groups")


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """{key: value} a results.json mapping was made with (see the module docstring); hashable with
    :func:`frozen`. A results.json without a recorded config has the key ``config`` = not recorded."""
    config = data.get("config")
    if isinstance(config, dict):
        settings = {k: v for k, v in _flatten(config).items() if k not in NOT_COMPARED and not is_excluded(k)}
    else:
        settings = {"config": NOT_RECORDED}
    identity = data.get(DATA_IDENTITY)
    if isinstance(identity, dict):
        settings.update({f"{DATA_IDENTITY}.{k}": v for k, v in _flatten(identity).items()
                         if k not in PER_SEED_DATA_KEYS})
    else:
        settings[DATA_IDENTITY] = NOT_RECORDED
    stop = (data.get("black_box") or {}).get("budget_stop")
    if isinstance(stop, dict):  # a query budget ended the run early: never averaged with complete runs
        settings["black_box.stopped_by_budget_after_epoch"] = stop.get("epochs_done")
    return settings


def frozen(settings: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Settings as a hashable, comparable value (values as canonical JSON)."""
    return tuple(sorted((k, json.dumps(v, sort_keys=True, default=str)) for k, v in settings.items()))


def has_data_identity(frozen_settings: tuple[tuple[str, str], ...]) -> bool:
    return dict(frozen_settings).get(DATA_IDENTITY) != json.dumps(NOT_RECORDED)


def _value(frozen_settings: tuple[tuple[str, str], ...], key: str) -> str:
    text = dict(frozen_settings).get(key)
    if text is None:
        return ABSENT
    value = json.loads(text)
    return value if isinstance(value, str) else json.dumps(value)


def differing_keys(settings_list: Sequence[tuple[tuple[str, str], ...]]) -> list[str]:
    """Sorted keys whose value (or presence) is not the same in every one of ``settings_list`` (frozen)."""
    keys = {k for s in settings_list for k, _ in s}
    return sorted(k for k in keys if len({dict(s).get(k) for s in settings_list}) > 1)


def label(frozen_settings: tuple[tuple[str, str], ...], keys: Sequence[str]) -> str:
    """'[K=V, ...]' of ``keys``; a result without a data identity says so once (not each missing key)."""
    if has_data_identity(frozen_settings):
        shown = [k for k in keys if k != DATA_IDENTITY]
    else:
        shown = [k for k in keys if not k.startswith(DATA_IDENTITY + ".")]
    return "[" + ", ".join(f"{k}={_value(frozen_settings, k)}" for k in shown) + "]"


def split_settings(records: Iterable[Record], row_of: Callable[[Record], Hashable],
                   cell_of: Callable[[Record], Hashable],
                   describe: Callable[[Record], str]) -> tuple[list[Record], list[Conflict]]:
    """(records, conflicts): each record with ``setting`` set to the label of its row's differing keys
    ("" in a row whose cells each hold one setting), and the :class:`Conflict` of every cell (records with
    equal ``row_of`` and ``cell_of``) that holds more than one setting; ``describe(record)`` names a cell."""
    cells = defaultdict(list)
    for rec in records:
        cells[(row_of(rec), cell_of(rec))].append(rec)
    conflicts, row_keys = [], defaultdict(set)
    for (row, _), recs in cells.items():
        distinct = sorted({r.settings for r in recs})
        if len(distinct) < 2:
            continue
        keys = differing_keys(distinct)
        row_keys[row].update(keys)
        groups = [(label(s, keys), sorted((r for r in recs if r.settings == s), key=lambda r: (r.seed, r.path)))
                  for s in distinct]
        conflicts.append(Conflict(describe(recs[0]), keys, sorted(groups, key=lambda g: g[0])))
    labelled = [rec._replace(setting=label(rec.settings, sorted(row_keys[row_of(rec)])))
                if row_of(rec) in row_keys else rec for rec in records]
    return labelled, sorted(conflicts, key=lambda c: c.where)


def conflict_message(conflicts: Sequence[Conflict], fix: str) -> str:
    """The ERROR line and, under it, each conflicting cell: its differing keys, and per setting the
    values and the run folders."""
    lines = [f"ERROR: {len(conflicts)} cell(s) hold results made with different settings, which are never "
             f"averaged together; {fix}"]
    for conflict in conflicts:
        lines.append(f"  {conflict.where}: differing keys {', '.join(conflict.keys)}")
        for values, recs in conflict.groups:
            folders = ", ".join(f"seed {r.seed} {osp.dirname(r.path)}" for r in recs)
            lines.append(f"    {values}: {folders}")
    return "\n".join(lines)


def without_data_identity(records: Iterable[Record]) -> list[Record]:
    """The records whose results.json records no data identity (written before it was recorded)."""
    return [r for r in records if not has_data_identity(r.settings)]


def data_identity_note(records: Iterable[Record]) -> tuple[str, ...]:
    """The note under a table some of whose results record no data identity, naming their rows' methods."""
    methods = sorted({r.method for r in without_data_identity(records)})
    if not methods:
        return ()
    return (f"no recorded data identity (results.json from before data_identity was recorded) for results of "
            f"{', '.join(methods)}: they are averaged only with results that lack it too",)
