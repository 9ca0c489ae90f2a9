"""python -m runs.catalogue: a real command line that never writes a plugin's trainers into the repository
(issue 19)."""
import os
import sys

from runs import catalogue
from tests.conftest import REPO, run_cmd

REPO_FILES = [os.path.join(REPO, "runs", "trainers.json"), os.path.join(REPO, "runs", "datasets.json"),
              os.path.join(REPO, "scripts", "ar.sh")]


def _stamps():
    return [os.stat(p).st_mtime_ns for p in REPO_FILES]


def test_help_prints_the_options_and_writes_nothing():
    before = _stamps()
    proc = run_cmd([sys.executable, "-m", "runs.catalogue", "--help"], timeout=60)
    assert proc.returncode == 0
    assert "--check" in proc.stdout and "--trainers" in proc.stdout
    assert _stamps() == before
    proc = run_cmd([sys.executable, "-m", "runs.catalogue", "--bogus"], timeout=60)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr and _stamps() == before


def test_a_plugins_trainers_are_refused_for_the_repository_catalogue(monkeypatch, capsys):
    monkeypatch.setenv("VR_PLUGINS", "tests.toy_plugin")
    for name in ("VR_TRAINER_CATALOGUE", "VR_DATASET_CATALOGUE"):
        monkeypatch.delenv(name, raising=False)
    before = _stamps()
    assert catalogue.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: VR_PLUGINS registers the trainer(s) ToyLinear")
    assert "VR_TRAINER_CATALOGUE=" in err[0]
    assert _stamps() == before and not os.path.exists(os.path.join(REPO, "scripts", "toylinear.sh"))


def test_a_plugin_that_fails_to_import_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VR_PLUGINS", "no_such_plugin_module")
    monkeypatch.setenv("VR_TRAINER_CATALOGUE", str(tmp_path / "mine.json"))
    assert catalogue.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: VR_PLUGINS names the module 'no_such_plugin_module'")
    assert not (tmp_path / "mine.json").exists()


def test_check_names_stale_files_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VR_PLUGINS", "tests.toy_plugin")
    mine, datasets = tmp_path / "mine.json", tmp_path / "mine_datasets.json"
    args = ["--trainers", str(mine), "--datasets", str(datasets)]
    assert catalogue.main(["--check"] + args) == 1
    assert f"stale: {mine}" in capsys.readouterr().out and not mine.exists()
    assert catalogue.main(args) == 0
    assert "toylinear" in catalogue.load(str(mine)) and "Caltech101" in catalogue.load_datasets(str(datasets))
    assert catalogue.main(["--check"] + args) == 0
