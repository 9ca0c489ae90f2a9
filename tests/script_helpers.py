"""Helpers for the tests of the scripts/ commands (shared here, not imported from another test module)."""
import functools
import importlib.util
import math
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    """scripts/<name>.py as a fresh module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text, title_start, key_column=0):
    """Rows (the cell in ``key_column`` -> the cells after it) of the 'simple' table under the given title."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title_start))
    rows = {}
    for line in lines[start + 3:]:
        if not line.strip():
            break
        parts = [p.strip() for p in line.split("  ") if p.strip()]
        rows[parts[key_column]] = parts[key_column + 1:]
    return rows


@functools.cache
def _make_table():
    return load_script("make_table")


def table(capsys, *argv):
    """make_table.py's main on ``argv``: (exit code, its stdout, its stderr)."""
    rc = _make_table().main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def pstd(values):  # numpy.std (ddof=0), the reference CoOp's script uses
    mu = sum(values) / len(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def cell(values):
    """The text of a table cell over these seeds' accuracies: mean +- std (seeds)."""
    return f"{sum(values) / len(values):.1f} +- {pstd(values):.1f} ({len(values)})"
