"""What the project's Python files import (statements and importlib.import_module("...")), for the tests of
the import layers (shared here, not imported from another test module)."""
import ast
import os

from tests.conftest import REPO


def python_files(*folders):
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, folder)):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
            yield from (os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))


def imported_modules(tree):
    """Absolute module names imported by ``tree``: import statements and importlib.import_module("...")."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) ==
              "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and not node.args[0].value.startswith(".")):
            yield node.args[0].value


def imports_of(folders, packages):
    """'<file> imports <module>' for each import, in the .py files under ``folders``, of a module of ``packages``."""
    found = []
    for path in python_files(*folders):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        found += [f"{os.path.relpath(path, REPO)} imports {m}" for m in imported_modules(tree)
                  if m.split(".")[0] in packages]
    return found
