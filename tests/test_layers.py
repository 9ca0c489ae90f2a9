"""The engine is the bottom layer (issue 12, 4): it imports no plugin package, it imports without torch,
and the helpers it owns (atomic write, file lock, "did you mean", image reading) have no copies elsewhere."""
import ast
import os
import sys

import pytest

from tests.conftest import REPO, run_cmd
from tests.import_scan import imported_modules, imports_of, python_files

UPPER = {"datasets", "trainers", "descriptions", "scripts", "plugins", "backbones", "vr", "benchmarks", "train"}
# calls that only the engine's shared helpers make (engine/io.py, engine/names.py, engine/imageio.py)
OWNED_CALLS = {("tempfile", "mkstemp"): "engine.io.atomic_write_bytes", ("fcntl", "flock"): "engine.io.file_lock",
               ("difflib", "get_close_matches"): "engine.names.close_matches"}


def test_no_engine_file_imports_a_plugin_package():
    found = imports_of(["engine"], UPPER)
    assert not found, "the engine must not import the layers above it:\n" + "\n".join(found)


def test_the_import_check_sees_plugin_imports():
    tree = ast.parse("import os\ndef f():\n    import trainers\n    from datasets.base import X\n"
                     "    importlib.import_module('descriptions')\n")
    assert [m for m in imported_modules(tree) if m.split(".")[0] in UPPER] == ["trainers", "datasets.base",
                                                                               "descriptions"]


def test_engine_helpers_import_without_torch():
    code = ("import sys, engine, engine.io, engine.imageio, engine.errors, engine.names, engine.run_logging; "
            "print(sorted(m for m in ('torch', 'yacs', 'datasets', 'trainers') if m in sys.modules))")
    proc = run_cmd([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_one_copy_of_each_shared_helper():
    copies = []
    for path in python_files("backbones", "datasets", "descriptions", "scripts", "trainers", "vr", "benchmarks"):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                owner = OWNED_CALLS.get((node.value.id, node.attr))
                if owner:
                    copies.append(f"{os.path.relpath(path, REPO)}:{node.lineno} uses "
                                  f"{node.value.id}.{node.attr}; use {owner}")
    assert not copies, "\n".join(copies)


def test_a_plugin_that_fails_to_import_is_one_error_naming_it(tmp_path, monkeypatch):
    from plugins import PluginImportError, load_plugins

    (tmp_path / "broken_plugin.py").write_text("raise KeyError('ToyLinear was already registered')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginImportError, match="VR_PLUGINS names the module 'broken_plugin', which cannot be "
                                                "imported: KeyError: .*already registered"):
        load_plugins({"VR_PLUGINS": " broken_plugin , "})
    with pytest.raises(PluginImportError, match="'no_such_plugin_xyz', which cannot be imported: No module"):
        load_plugins({"VR_PLUGINS": "no_such_plugin_xyz"})
