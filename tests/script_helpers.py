"""Helpers for the tests of the scripts/ commands (shared here, not imported from another test module)."""
import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    """scripts/<name>.py as a fresh module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text, title_start):
    """Rows (label -> cells) of the 'simple' table under the given title."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title_start))
    rows = {}
    for line in lines[start + 3:]:
        if not line.strip():
            break
        parts = [p.strip() for p in line.split("  ") if p.strip()]
        rows[parts[0]] = parts[1:]
    return rows
