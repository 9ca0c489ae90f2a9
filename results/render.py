"""Tables as text, markdown (GitHub), csv or latex (tabulate), with their notes under them."""
from __future__ import annotations

import csv
import io
import re
from collections import namedtuple
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import names
from .cells import LATEX_MARK, MARK, TEST_SELECTED_NOTE, marked
from .fewshot import avg_marked

if TYPE_CHECKING:
    from .cells import Cell
    from .fewshot import Table

# a protocol table (results/protocol_tables.py makes them); body: rows of strings
ProtoTable = namedtuple("ProtoTable", "title headers body")

FORMATS = ("text", "markdown", "csv", "latex")
MISSING = "-"


def format_cell(cell: Cell | None, decimals: int, pm: str = "+-", mark: str = MARK) -> str:
    if cell is None:
        return MISSING
    if cell.std is None:
        return marked(f"{cell.mean:.{decimals}f}", cell.test_selected, mark)
    return marked(f"{cell.mean:.{decimals}f} {pm} {cell.std:.{decimals}f} ({cell.n})", cell.test_selected, mark)


def format_avg(avg: float | None, decimals: int, flag: bool = False, mark: str = MARK) -> str:
    return MISSING if avg is None else marked(f"{avg:.{decimals}f}", flag, mark)


def format_queries(value: float | None) -> str:
    """Training image queries per run (mean over the row's runs), '-' for a white-box row."""
    return "-" if value is None else f"{value:,.0f}"


def latex_escape(text: object) -> str:
    return re.sub(r"([_%&#$])", r"\\\1", str(text))


def table_title(table: Table, metric: str) -> str:
    return (f"{table.shots} shots, {table.backbone}: {metric} (%), "
            "mean +- std over seeds (number of seeds)")


def _tabulate(body: Sequence[Sequence[str]], headers: Sequence[str], fmt: str, title: str) -> str:
    from tabulate import tabulate

    if fmt == "latex":
        text = tabulate(body, headers, tablefmt="latex_raw", disable_numparse=True)
        return f"% {latex_escape(title)}\n{text}"
    if fmt == "markdown":
        return f"### {title}\n\n" + tabulate(body, headers, tablefmt="github", disable_numparse=True)
    return f"{title}\n" + tabulate(body, headers, tablefmt="simple", disable_numparse=True)


def render(tables: Sequence[Table], fmt: str = "text", metric: str = "accuracy", decimals: int = 1,
           notes: Iterable[str] = ()) -> str:
    """The few-shot tables (results.fewshot.Table) as one string in the given format."""
    if fmt == "csv":
        columns = names.ordered_datasets({c for t in tables for c in t.columns})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        queries = any(row.queries is not None for t in tables for row in t.rows)
        writer.writerow(["shots", "backbone", "method"] + columns + ["Avg"] + (["Queries"] if queries else []))
        for t in tables:
            for row in t.rows:
                writer.writerow([t.shots, t.backbone, row.label]
                                + [format_cell(row.cells.get(c), decimals) for c in columns]
                                + [format_avg(row.avg, decimals, avg_marked(row, t.columns))]
                                + ([format_queries(row.queries)] if queries else []))
        return buf.getvalue() + notes_text(notes, fmt)

    blocks = []
    for t in tables:
        if fmt == "latex":
            headers = ["Method"] + [latex_escape(c) for c in t.columns] + ["Avg"]
            body = [[latex_escape(row.label)]
                    + [format_cell(row.cells.get(c), decimals, pm=r"$\pm$", mark=LATEX_MARK) for c in t.columns]
                    + [format_avg(row.avg, decimals, avg_marked(row, t.columns), LATEX_MARK)]
                    for row in t.rows]
        else:
            headers = ["Method"] + list(t.columns) + ["Avg"]
            body = [[row.label] + [format_cell(row.cells.get(c), decimals) for c in t.columns]
                    + [format_avg(row.avg, decimals, avg_marked(row, t.columns))] for row in t.rows]
        if any(row.queries is not None for row in t.rows):  # black-box rows: training queries per run
            headers.append("Queries")
            for line, row in zip(body, t.rows, strict=False):
                line.append(format_queries(row.queries))
        blocks.append(_tabulate(body, headers, fmt, table_title(t, metric)))
    return "\n\n".join(blocks) + "\n" + notes_text(notes, fmt)


def render_tables(tables: Sequence[ProtoTable], fmt: str) -> str:
    """Protocol tables (ProtoTable above: title, headers, rows of strings)."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for table in tables:
            writer.writerow([table.title])
            writer.writerow(table.headers)
            writer.writerows(table.body)
        return buf.getvalue()
    blocks = []
    for table in tables:
        headers, body = table.headers, table.body
        if fmt == "latex":
            body = [[latex_escape(c).replace("+-", r"$\pm$").replace(MARK, LATEX_MARK) for c in row] for row in body]
            headers = [latex_escape(h) for h in headers]
        blocks.append(_tabulate(body, headers, fmt, table.title))
    return "\n\n".join(blocks) + "\n"


def notes_text(notes: Iterable[str], fmt: str) -> str:
    """Notes under the tables, as the format writes them (a LaTeX note is a comment). CSV keeps its
    rows machine-readable: only the mark's meaning follows them, as a '#' line."""
    if fmt == "csv":
        return "".join(f"# {note}\n" for note in notes if note == TEST_SELECTED_NOTE)
    if not notes:
        return ""
    prefix = "" if fmt == "text" else "> " if fmt == "markdown" else "% "
    return "\n" + "".join(f"{prefix}{note}\n" for note in notes)
