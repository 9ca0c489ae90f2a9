"""A table cell: mean +- population std over the seeds of one setting, and the test-selected mark."""
from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import Record

# A cell (or average) that holds a test-selected result gets MARK (LATEX_MARK in LaTeX) and the note.
MARK, LATEX_MARK = "\u2020", r"$^\dagger$"
TEST_SELECTED_NOTE = f"{MARK} hyper-parameters chosen on the test set: not comparable"

Cell = namedtuple("Cell", "mean std n test_selected", defaults=(False,))  # std, n: None when reported


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (ddof=0, as CoOp's parse_test_res.py / numpy.std)."""
    mu = sum(values) / len(values)
    return mu, math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def cell_of(recs: Sequence[Record]) -> Cell:
    """The mean +- std cell of some records (one per seed, one setting), marked when any is test-selected."""
    mu, sd = mean_std([r.value for r in recs])
    return Cell(mu, sd, len(recs), any(r.test_selected for r in recs))


def flagged(*cells: Cell) -> bool:
    """Does any of these cells hold a test-selected result?"""
    return any(c.test_selected for c in cells)


def marked(text: str, flag: bool, mark: str = MARK) -> str:
    return f"{text} {mark}" if flag else text


def test_selected_notes(flag: bool) -> tuple[str, ...]:
    """The note under a table that shows a test-selected result (flag: any such cell)."""
    return (TEST_SELECTED_NOTE,) if flag else ()
