"""The few-shot tables: one per (shots, backbone), a row per trainer (and trainer config when a method has
several, and setting when --split-conflicts split one), a column per dataset key and class subset, cells
mean +- std over seeds; Avg is the mean over the columns for rows that have every column. With
``reported``, the published rows of results/reported.py that match a table's backbone and shots follow
their method's own rows."""
from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from . import names
from . import reported as published
from .cells import Cell, cell_of
from .records import column_of

if TYPE_CHECKING:
    from .record import Record

# queries: mean training image queries per run of a black-box row (None: not a black-box method)
Row = namedtuple("Row", "label cells avg queries", defaults=(None,))
Table = namedtuple("Table", "shots backbone columns rows")


def row_label(method: str, variant: str | None, variants: Iterable[str | None], setting: str = "") -> str:
    """'AR', 'AR [vit_b16_ep50]' when the method has several trainer configs, then the setting label."""
    text = f"{method} [{variant or 'other'}]" if len(variants) > 1 else method
    return f"{text} {setting}" if setting else text


def row_queries(recs: Sequence[Record]) -> float | None:
    """Mean training image queries per run over a row's records, when every one recorded them."""
    counts = [r.queries for r in recs]
    return sum(counts) / len(counts) if counts and None not in counts else None


def row_avg(cells: Mapping[str, Cell], columns: Sequence[str]) -> float | None:
    if not columns or any(cells.get(col) is None for col in columns):
        return None
    return sum(cells[col].mean for col in columns) / len(columns)


def avg_marked(row: Row, columns: Sequence[str]) -> bool:
    return row.avg is not None and any(row.cells[col].test_selected for col in columns)


def reported_protocol(method: str, shots: int, backbone: str, metric: str) -> tuple[str, int] | None:
    """The (backbone, shots) key of REPORTED_BY_PROTOCOL whose published row of ``method`` belongs in
    the table of (shots, backbone); None when none does. Zero-shot numbers (SHOT_INDEPENDENT) belong
    in every shots' table of their backbone."""
    if metric != published.METRIC:
        return None
    for key, rows in published.REPORTED_BY_PROTOCOL.items():
        published_backbone, published_shots = key
        if (method in rows and names.same_backbone(backbone, published_backbone)
                and (shots == published_shots or method in published.SHOT_INDEPENDENT)):
            return key
    return None


def reported_row(method: str, shots: int, backbone: str, metric: str, columns: Sequence[str]) -> Row | None:
    """The '<method> (reported)' row for these columns (test-selected rows marked), or None."""
    key = reported_protocol(method, shots, backbone, metric)
    if key is None:
        return None
    numbers = published.REPORTED_BY_PROTOCOL[key][method]
    selected = published.TEST_SELECTED.get(key, {}).get(method, ())
    cells = {}
    for col in columns:
        name = names.canonical_dataset(col)
        if name in numbers:
            cells[col] = Cell(numbers[name], None, None, selected == published.EVERY_DATASET or name in selected)
    return Row(f"{method} (reported)", cells, row_avg(cells, columns)) if cells else None


def reported_source_note(method: str, shots: int, backbone: str, metric: str) -> str:
    """The line under the table that says where a reported row comes from."""
    key = reported_protocol(method, shots, backbone, metric)
    published_backbone, published_shots = key
    return f"{method} (reported, {published_backbone}, {published_shots} shots): {published.SOURCES[key][method]}"


def build_tables(records: Iterable[Record], metric: str = "accuracy", reported: str | None = None) -> list[Table]:
    """Tables sorted by (shots, backbone). reported: None, 'measured' or 'all' methods. Each record's
    ``setting`` is its own row (identity.split_settings leaves it "" unless settings were split)."""
    groups = defaultdict(list)
    for rec in records:
        groups[(rec.shots, rec.backbone)].append(rec)
    tables = []
    for (shots, backbone) in sorted(groups, key=lambda k: (k[0], k[1])):
        recs = groups[(shots, backbone)]
        columns = names.ordered_datasets({column_of(r) for r in recs})
        variants = defaultdict(set)
        values = defaultdict(lambda: defaultdict(list))
        for r in recs:
            variants[r.method].add(r.variant)
            values[(r.method, r.variant, r.setting)][column_of(r)].append(r)

        methods = set(variants)
        if reported == "all":
            methods |= {m for rows in published.REPORTED_BY_PROTOCOL.values() for m in rows
                        if reported_protocol(m, shots, backbone, metric)}
        rows = []
        for method in names.ordered(methods, names.METHOD_ORDER):
            lines = sorted({(v, s) for (m, v, s) in values if m == method},
                           key=lambda vs: (vs[0] is None, vs[0] or "", vs[1]))
            for variant, setting in lines:
                cells = {col: cell_of(cell_recs) for col, cell_recs in values[(method, variant, setting)].items()}
                runs = [r for col_recs in values[(method, variant, setting)].values() for r in col_recs]
                rows.append(Row(row_label(method, variant, variants[method], setting), cells,
                                row_avg(cells, columns), row_queries(runs)))
            extra = reported_row(method, shots, backbone, metric, columns) if reported else None
            if extra:
                rows.append(extra)
        tables.append(Table(shots, backbone, columns, rows))
    return tables


def reported_notes(tables: Sequence[Table], records: Sequence[Record], metric: str, err: TextIO) -> tuple[str, ...]:
    """The notes of --reported: each printed reported row's source, and why a measured method has none."""
    suffix = " (reported)"
    shown = [(r.label[:-len(suffix)], t.shots, t.backbone) for t in tables for r in t.rows
             if r.label.endswith(suffix)]
    if not shown:
        protocols_list = ", ".join(f"{b} {s} shots" for b, s in published.REPORTED_BY_PROTOCOL)
        print(f"note: no reported numbers apply (they are {published.METRIC}, {protocols_list})", file=err)
    sources = dict.fromkeys(reported_source_note(m, s, b, metric) for m, s, b in shown)
    with_row = {m for m, _, _ in shown}
    measured = {r.method for r in records}
    return published.NOTES + tuple(sources) + tuple(
        note for method, note in published.UNAVAILABLE.items() if method in measured - with_row)


def any_marked(tables: Iterable[Table]) -> bool:
    return any(c.test_selected for t in tables for r in t.rows for c in r.cells.values())
