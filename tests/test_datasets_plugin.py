"""A dataset defined only in this file plus a yaml the test writes: it loads, trains (train.py in-process,
test-tiny, 1 epoch), sweeps and tabulates, with no edit of the repository (the README's recipe)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.base import CoOpDataset
from datasets.splits import read_and_split_data
from engine import DATASET_REGISTRY
from runs import catalogue
from tests.plugin_squares_data import TINY_AR, make_squares

REPO = Path(__file__).resolve().parents[1]
PLUGIN = __name__  # VR_PLUGINS=tests.test_datasets_plugin


@DATASET_REGISTRY.register()
class PluginSquares(CoOpDataset):
    """Red and blue 16x16 squares, one folder per class (split 50/20/30 on first use)."""

    dataset_dir = "plugin_squares"
    image_folder = "images"
    split_file = "split_plugin_squares.json"
    config_name = "plugin_squares"
    descriptions_key = "plugin_squares"
    zeroshot_template = "a photo of a {} square."
    display_name = "Squares (plugin)"
    table_order = 5  # before FGVCAircraft (10)
    layout = "plugin_squares/\n  images/<class>/*.png\n"

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with the plugin's yaml, a trainer yaml, a test-only dataset yaml and its catalogue."""
    ws = tmp_path / "ws"
    (ws / "configs" / "datasets").mkdir(parents=True)
    (ws / "configs" / "datasets" / "plugin_squares.yaml").write_text('DATASET:\n  NAME: "PluginSquares"\n')
    (ws / "configs" / "datasets" / "imagenet_a.yaml").write_text(
        (REPO / "configs" / "datasets" / "imagenet_a.yaml").read_text())
    (ws / "configs" / "trainers" / "AR").mkdir(parents=True)
    (ws / "configs" / "trainers" / "AR" / "tiny.yaml").write_text(TINY_AR)
    monkeypatch.setenv("VR_PLUGINS", PLUGIN)
    monkeypatch.setenv("VR_DATASET_CATALOGUE", str(ws / "plugin_datasets.json"))
    make_squares(tmp_path / "data")
    return ws


def test_plugin_dataset_loads_trains_sweeps_and_tabulates(workspace, tmp_path, monkeypatch, capsys):
    import train

    ws, data = workspace, tmp_path / "data"
    rows = catalogue.write_datasets()
    assert rows[-1].name == "PluginSquares" and rows[-1].display_name == "Squares (plugin)"
    assert not (REPO / "runs" / "plugin_datasets.json").exists()

    run = ws / "out" / "plugin_squares" / "AR" / "tiny_2shots" / "seed1"
    argv = ["--root", str(data), "--seed", "1", "--trainer", "AR",
            "--dataset-config-file", str(ws / "configs" / "datasets" / "plugin_squares.yaml"),
            "--config-file", str(ws / "configs" / "trainers" / "AR" / "tiny.yaml"),
            "--output-dir", str(run), "DATASET.NUM_SHOTS", "2"]
    assert train.main(argv) == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    assert results["dataset"] == "PluginSquares" and 0 <= results["accuracy"] <= 100
    assert (data / "plugin_squares" / "split_plugin_squares.json").is_file()  # created by create_splits

    # the sweep: `--datasets all` is the plugin's dataset (not the test-only imagenet_a), already done
    env = dict(os.environ, PYTHON="/bin/false", DATA=str(data), OUTPUT="out", RUNNER_PYTHON=sys.executable)
    res = subprocess.run(["/bin/bash", str(REPO / "scripts" / "sweep.sh"), "--methods", "ar", "--datasets", "all",
                          "--shots", "2", "--seeds", "1", "--cfg", "tiny"], cwd=ws, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[1/1] ar plugin_squares 2 shots seed 1 ... skip (results.json matches)" in res.stdout, res.stdout
    assert "imagenet_a" not in res.stdout

    # the table: the plugin's column, by its display name, before DescribableTextures (table order)
    other = ws / "out" / "dtd" / "AR" / "tiny_2shots" / "seed1"
    other.mkdir(parents=True)
    (other / "results.json").write_text(json.dumps(dict(results, dataset="DescribableTextures", config={})))
    from tests.script_helpers import load_script  # not at import: this module is a plugin too

    make_table = load_script("make_table")
    capsys.readouterr()
    assert make_table.main([str(ws / "out")]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header.split()[:4] == ["Method", "Squares", "(plugin)", "DescribableTextures"], header


@pytest.mark.parametrize("plugin,needle", [
    ("dup_plugin", ('KeyError: An object named "Digits" was already registered in "DATASET" registry (by module '
                    'datasets.digits); module dup_plugin registers it again')),
    ("broken_plugin", "RuntimeError: boom"),
])
def test_a_plugin_that_fails_to_import_is_one_error_naming_it(tmp_path, monkeypatch, capsys, plugin, needle):
    import train

    (tmp_path / "dup_plugin.py").write_text(
        "from datasets.base import CoOpDataset\nfrom engine import DATASET_REGISTRY\n\n\n"
        "@DATASET_REGISTRY.register()\nclass Digits(CoOpDataset):\n    config_name = 'digits2'\n")
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VR_PLUGINS", plugin)
    assert train.main(["--root", str(tmp_path), "--trainer", "AR", "--output-dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"ERROR: VR_PLUGINS names the module '{plugin}', which cannot be imported: {needle}" in err, err
    assert "Traceback" not in err
