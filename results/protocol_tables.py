"""The protocol tables of make_table.py: base-to-new (base, new, HM) and cross-dataset / domain
generalisation (source ImageNet, each target, average).

base2new: results whose DATASET.SUBSAMPLE_CLASSES is base (the training runs, tested on the base
classes at the end of training) and new (--eval-only on the new classes); one row per method and
dataset: base and new as mean +- std over seeds (number of seeds), HM = harmonic mean of the two
means (the convention of CoCoOp's tables); the Average row averages base and new over the datasets
that have both and takes the HM of those averages. A base seed without its new run (or the reverse)
is reported on stderr; a tree without any new-class run is an error naming the missing runs. With
--reported, a method's published rows (results/reported.py REPORTED_BASE2NEW: its datasets in the table and the
published 11-dataset average, CoCoOp's protocol ViT-B/16 16 shots) follow its own, their sources under the table.

xd / dg: the all-class results in scripts/xd.sh's folders $OUTPUT/xd/{train,test} (so the output root
works as well as $OUTPUT/xd; a tree without them is an error, never its few-shot runs): the ImageNet run
is the source, the other datasets (xd) or the ImageNet variants (dg) the targets, all keyed by DATASET.NAME
and shown by display_name; Average is the mean over the targets for rows that have every target.

A cell, HM or average that holds a test-selected result carries the MARK of results/cells.py, and the
tables get its note.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TextIO

from engine.names import squash
from runs import protocol_layout as protocols

from . import names
from . import reported as reported_numbers
from .cells import MARK, cell_of, flagged, test_selected_notes
from .fewshot import row_label
from .render import ProtoTable, format_avg, format_cell, notes_text, render_tables

if TYPE_CHECKING:
    from .record import Record

BASE, NEW = "base", "new"


class MissingRuns(ValueError):
    """A protocol table cannot be made: the message names the runs that are missing."""


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _grouped(records):
    """{(shots, backbone): {method: {(variant, setting): [records]}}}"""
    groups = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in records:
        groups[(rec.shots, rec.backbone)][rec.method][(rec.variant, rec.setting)].append(rec)
    return groups


def _lines(method, lines):
    """(row label, records) of one method's (variant, setting) lines, in order."""
    variants = {v for v, _ in lines}
    for variant, setting in sorted(lines, key=lambda vs: (vs[0] is None, vs[0] or "", vs[1])):
        yield row_label(method, variant, variants, setting), lines[(variant, setting)]


def _methods(by_method):
    for method in names.ordered(by_method, names.METHOD_ORDER):
        yield from _lines(method, by_method[method])


def used_records(protocol: str, records: Iterable[Record]) -> list[Record]:
    """The records a protocol's tables read: base and new class runs (base2new); all-class runs in
    scripts/xd.sh's folders (xd, dg)."""
    if protocol == "base2new":
        return [r for r in records if r.classes in (BASE, NEW)]
    return [r for r in records if r.classes == names.ALL_CLASSES
            and protocols.protocol_dir_of(r.path) in (protocols.XD_TRAIN, protocols.XD_TEST)]


# ---------------------------------------------------------------- base-to-new

def _run_name(rec):
    return f"{rec.method} {rec.dataset} {rec.shots} shots {rec.backbone} seed {rec.seed}"


def missing_pairs(records):
    """Lines naming each base run without its new run and each new run without its base run."""
    seeds = defaultdict(dict)
    for rec in records:
        seeds[(rec.method, rec.variant, rec.dataset, rec.backbone, rec.shots, rec.classes)][rec.seed] = rec
    lines = []
    for key, by_seed in sorted(seeds.items(), key=lambda kv: [str(k) for k in kv[0]]):
        other = NEW if key[-1] == BASE else BASE
        partner = seeds.get(key[:-1] + (other,), {})
        for seed, rec in sorted(by_seed.items()):
            if seed not in partner:
                lines.append(f"no {other}-class result for {_run_name(rec)} ({key[-1]} run: "
                             f"{rec.path})")
    return lines


def reported_base2new_rows(method, datasets, decimals=1):
    """'<method> (reported)' rows: its published (base, new, HM) for the table's datasets and the published
    average over CoOp's 11 datasets (results/reported.py REPORTED_BASE2NEW)."""
    published = reported_numbers.REPORTED_BASE2NEW[method]
    label = f"{method} (reported)"
    rows = [[label, dataset, *(format_avg(v, decimals) for v in published[names.canonical_dataset(dataset)])]
            for dataset in datasets if names.canonical_dataset(dataset) in published]
    rows.append([label, "Average (published, 11 datasets)",
                 *(format_avg(v, decimals) for v in published[reported_numbers.AVERAGE])])
    return rows


def reported_base2new_note(method):
    backbone, shots = reported_numbers.BASE2NEW_PROTOCOL
    return f"{method} (reported, base-to-new, {backbone}, {shots} shots): {reported_numbers.BASE2NEW_SOURCES[method]}"


def _base2new_rows(label, recs, decimals):
    """One measured row per dataset (base, new mean +- std, HM of the means) and the Average row."""
    values = defaultdict(lambda: defaultdict(list))
    for rec in recs:
        values[rec.dataset][rec.classes].append(rec)
    datasets = names.ordered_datasets(values)
    body, paired = [], []
    for dataset in datasets:
        base, new = (cell_of(values[dataset][c]) if values[dataset].get(c) else None for c in (BASE, NEW))
        hm = None
        if base and new:
            paired.append((base, new))
            hm = harmonic_mean(base.mean, new.mean)
        body.append([label, dataset, format_cell(base, decimals), format_cell(new, decimals),
                     format_avg(hm, decimals, hm is not None and flagged(base, new))])
    if paired:
        avg_base = sum(b.mean for b, _ in paired) / len(paired)
        avg_new = sum(n.mean for _, n in paired) / len(paired)
        flag_base, flag_new = (flagged(*side) for side in zip(*paired, strict=False))
        name = "Average" if len(paired) == len(datasets) else f"Average ({len(paired)} of {len(datasets)} datasets)"
        body.append([label, name, format_avg(avg_base, decimals, flag_base),
                     format_avg(avg_new, decimals, flag_new),
                     format_avg(harmonic_mean(avg_base, avg_new), decimals, flag_base or flag_new)])
    return body


def base2new_tables(records: Sequence[Record], err: TextIO, decimals: int = 1, reported: str | None = None,
                    notes: list[str] | None = None) -> list[ProtoTable]:
    """The base-to-new tables; MissingRuns when there is nothing to pair. reported: None, 'measured' or 'all'
    methods get the published rows (tables of BASE2NEW_PROTOCOL only); their sources are appended to notes."""
    split = used_records("base2new", records)
    if not split:
        raise MissingRuns("no base-to-new results (DATASET.SUBSAMPLE_CLASSES base or new) in this "
                          "tree; make them with: bash scripts/base2new.sh METHOD DATASET")
    missing = missing_pairs(split)
    if not any(r.classes == NEW for r in split):
        raise MissingRuns("no new-class results (DATASET.SUBSAMPLE_CLASSES new) in this tree, so "
                          "no HM; missing runs:\n  " + "\n  ".join(missing)
                          + "\nrun bash scripts/base2new.sh again to make them")
    for line in missing:
        print(f"warning: {line}", file=err)
    tables = []
    for (shots, backbone), by_method in sorted(_grouped(split).items()):
        body, shown = [], []
        published = set()
        if reported and (shots, squash(backbone)) == (reported_numbers.BASE2NEW_PROTOCOL[1],
                                                          squash(reported_numbers.BASE2NEW_PROTOCOL[0])):
            published = {m for m in reported_numbers.REPORTED_BASE2NEW if reported == "all" or m in by_method}
        table_datasets = names.ordered_datasets(
            {r.dataset for m in by_method.values() for v in m.values() for r in v})
        for method in names.ordered(set(by_method) | published, names.METHOD_ORDER):
            for label, recs in _lines(method, by_method.get(method, {})):
                body += _base2new_rows(label, recs, decimals)
            if method in published:  # after the method's own rows
                body += reported_base2new_rows(method, table_datasets, decimals)
                shown.append(method)
        if notes is not None:
            notes.extend(reported_base2new_note(m) for m in shown if reported_base2new_note(m) not in notes)
        title = (f"base-to-new, {shots} shots, {backbone}: accuracy (%), base and new mean +- std "
                 "over seeds (number of seeds), HM of the means")
        tables.append(ProtoTable(title, ["Method", "Dataset", "Base", "New", "HM"], body))
    return tables


# ---------------------------------------------------------------- cross-dataset / domain generalisation

def _names(config_names):
    return [names.canonical_dataset(name) for name in config_names]


def transfer_tables(records: Sequence[Record], protocol: str, err: TextIO, decimals: int = 1,
                    root: str | None = None) -> list[ProtoTable]:
    """Source ImageNet and the xd (other datasets) or dg (ImageNet variants) targets."""
    source = names.canonical_dataset(protocols.XD_SOURCE)
    variants = _names(protocols.dg_targets())
    expected = variants if protocol == "dg" else _names(protocols.XD_TARGETS)
    usable = used_records(protocol, records)
    if not usable:  # few-shot runs of a target are in-domain numbers, not transfer from ImageNet
        raise MissingRuns(f"no scripts/xd.sh runs under {root or 'this tree'}; run bash scripts/xd.sh "
                          "METHOD first")
    if not any(names.canonical_dataset(r.dataset) == source for r in usable):
        print(f"warning: no {source} (source) result in this tree; scripts/xd.sh writes the "
              "protocol's runs under $OUTPUT/xd", file=err)
    tables = []
    for (shots, backbone), by_method in sorted(_grouped(usable).items()):
        present = {names.canonical_dataset(r.dataset) for m in by_method.values() for v in m.values() for r in v}
        if protocol == "dg":
            targets = expected
        else:
            extra = [d for d in present if d not in expected and d not in variants and d != source]
            targets = expected + names.ordered_datasets(extra)
        absent = [t for t in targets if t not in present]
        if absent:
            print(f"note: {shots} shots, {backbone}: no result for target(s) " + ", ".join(absent),
                  file=err)
        body = []
        for label, recs in _methods(by_method):
            values = defaultdict(list)
            for rec in recs:
                values[names.canonical_dataset(rec.dataset)].append(rec)
            cells = {d: cell_of(v) for d, v in values.items()}
            avg = (sum(cells[t].mean for t in targets) / len(targets)
                   if targets and all(t in cells for t in targets) else None)
            body.append([label] + [format_cell(cells.get(d), decimals) for d in [source] + targets]
                        + [format_avg(avg, decimals, avg is not None
                                         and flagged(*(cells[t] for t in targets)))])
        kind = "domain generalisation" if protocol == "dg" else "cross-dataset transfer"
        title = (f"{kind} ({source} -> targets), {shots} shots, {backbone}: accuracy (%), "
                 "mean +- std over seeds (number of seeds)")
        headers = (["Method", f"{names.display_name(source)} (source)"] + [names.display_name(t) for t in targets]
                   + ["Average"])
        tables.append(ProtoTable(title, headers, body))
    return tables


def render_protocol(protocol: str, records: Sequence[Record], fmt: str = "text", metric: str = "accuracy",
                    decimals: int = 1, err: TextIO | None = None, root: str | None = None,
                    reported: str | None = None, notes: Iterable[str] = ()) -> str:
    """The table text of one protocol (base2new, xd or dg), with ``notes``, the note of a test-selected mark
    and, with reported ('measured' / 'all', base2new only), the published rows and their sources."""
    sources = []
    if protocol == "base2new":
        tables = base2new_tables(records, err, decimals, reported if metric == "accuracy" else None, sources)
        if reported and not sources:
            backbone, shots = reported_numbers.BASE2NEW_PROTOCOL
            print(f"note: no reported base-to-new numbers apply (they are accuracy, {backbone}, {shots} shots, "
                  f"for {', '.join(reported_numbers.REPORTED_BASE2NEW)})", file=err)
    else:
        tables = transfer_tables(records, protocol, err, decimals, root)
    if metric != "accuracy":
        tables = [t._replace(title=t.title.replace("accuracy (%)", f"{metric} (%)")) for t in tables]
    marks = any(MARK in c for t in tables for row in t.body for c in row)
    notes = tuple(notes) + test_selected_notes(marks) + tuple(sources)
    return render_tables(tables, fmt) + notes_text(notes, fmt)
