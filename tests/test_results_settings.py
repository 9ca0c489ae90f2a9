"""Issue 19 item 2: a table cell or curve point never averages seeds made with different settings (recorded
config, data identity); issue 20 item 2: results/ is a library of its own under the scripts."""
import csv
import json
import sys

import pytest

from tests.conftest import REPO, run_cmd
from tests.import_scan import imports_of
from tests.result_files import write_recorded_run as write
from tests.script_helpers import load_script, table, table_rows

plot_curves = load_script("plot_curves")


def lr_sweep(root):
    """Seeds 1-2 with OPTIM.MAX_EPOCH 2, seed 3 with OPTIM.MAX_EPOCH 5 OPTIM.LR 1.0 (the issue's example)."""
    folders = [write(root, "dtd", "AR", seed, 10.0 * seed) for seed in (1, 2)]
    folders.append(write(root, "dtd", "AR", 3, 10.0, optim={"LR": 1.0, "MAX_EPOCH": 5}))
    write(root, "caltech101", "AR", 1, 90.0, dataset="Caltech101")
    return folders


def test_different_settings_in_one_cell_are_an_error_naming_keys_values_and_folders(tmp_path):
    """Old code: one cell 'AR 16.7 +- 4.7 (3)' over seeds trained for 2 and 5 epochs at two learning rates."""
    root = tmp_path / "output"
    folders = lr_sweep(root)
    proc = run_cmd([sys.executable, "scripts/make_table.py", str(root)])
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    error = next(line for line in lines if line.startswith("ERROR:"))
    assert "1 cell(s) hold results made with different settings" in error and "--split-conflicts" in error
    assert "  AR [vit_b16], DescribableTextures, 16 shots, ViT-B/16: differing keys OPTIM.LR, OPTIM.MAX_EPOCH" in lines
    assert f"    [OPTIM.LR=0.1, OPTIM.MAX_EPOCH=2]: seed 1 {folders[0]}, seed 2 {folders[1]}" in lines
    assert f"    [OPTIM.LR=1.0, OPTIM.MAX_EPOCH=5]: seed 3 {folders[2]}" in lines
    assert "SEED" not in proc.stderr and "OUTPUT_DIR" not in proc.stderr and "NUM_WORKERS" not in proc.stderr


def test_split_conflicts_gives_each_setting_its_own_labelled_row(tmp_path, capsys):
    root = tmp_path / "output"
    lr_sweep(root)
    rc, out, err = table(capsys, root, "--split-conflicts")
    assert rc == 0
    rows = table_rows(out, "16 shots")
    assert rows == {"AR [OPTIM.LR=0.1, OPTIM.MAX_EPOCH=2]": ["90.0 +- 0.0 (1)", "15.0 +- 5.0 (2)", "52.5"],
                    "AR [OPTIM.LR=1.0, OPTIM.MAX_EPOCH=5]": ["-", "10.0 +- 0.0 (1)", "-"]}
    assert "rows labelled [KEY=VALUE, ...] hold results whose settings differ" in out
    assert "1 cell(s) hold results of different settings" in err and "OPTIM.LR, OPTIM.MAX_EPOCH" in err
    rc, text, _ = table(capsys, root, "--split-conflicts", "--format", "csv")
    assert [r[2] for r in csv.reader(text.splitlines()[1:])] == ["AR [OPTIM.LR=0.1, OPTIM.MAX_EPOCH=2]",
                                                                 "AR [OPTIM.LR=1.0, OPTIM.MAX_EPOCH=5]"]


def test_two_output_roots_of_a_sweep_are_different_settings_not_duplicates(tmp_path, capsys):
    """Old code: the second root's seed was 'a duplicate result' and left out, its LR never mentioned."""
    root = tmp_path / "sweep"
    low = write(root, "lr0.1/dtd", "AR", 1, 60.0)
    high = write(root, "lr1.0/dtd", "AR", 1, 40.0, optim={"LR": 1.0})
    rc, out, err = table(capsys, root)
    assert rc == 1 and "duplicate" not in err + out
    assert "differing keys OPTIM.LR" in err and str(low) in err and str(high) in err
    rc, out, err = table(capsys, root, "--split-conflicts")
    assert table_rows(out, "16 shots") == {"AR [OPTIM.LR=0.1]": ["60.0 +- 0.0 (1)", "60.0"],
                                           "AR [OPTIM.LR=1.0]": ["40.0 +- 0.0 (1)", "40.0"]}
    write(root, "copy/dtd", "AR", 1, 50.0)  # the same settings again: that is a duplicate
    rc, out, err = table(capsys, root, "--split-conflicts")
    assert "duplicate result" in err and "1 duplicate result(s) left out" in out


def test_results_of_different_data_identities_are_never_averaged(tmp_path, capsys):
    """Seeds on another split (or classes, counts) are another experiment; each seed's own few-shot draw
    (fewshot_sha256) is not a difference."""
    root = tmp_path / "output"
    for seed in (1, 2):
        write(root, "dtd", "AR", seed, 60.0 + seed,
              data_identity={"split": "aa11", "fewshot_sha256": f"d{seed}", "num_classes": 47})
    rc, out, err = table(capsys, root)
    assert rc == 0 and table_rows(out, "16 shots") == {"AR": ["61.5 +- 0.5 (2)", "61.5"]}
    write(root, "dtd", "AR", 3, 20.0, data_identity={"split": "bb22", "fewshot_sha256": "d3", "num_classes": 47})
    rc, out, err = table(capsys, root)
    assert rc == 1 and "differing keys data_identity.split\n" in err and "fewshot" not in err
    rc, out, err = table(capsys, root, "--split-conflicts")
    assert table_rows(out, "16 shots") == {"AR [data_identity.split=aa11]": ["61.5 +- 0.5 (2)", "61.5"],
                                           "AR [data_identity.split=bb22]": ["20.0 +- 0.0 (1)", "20.0"]}
    assert "no recorded data identity" not in out


def test_results_without_data_identity_are_tabulated_only_with_each_other(tmp_path, capsys):
    """results.json written before data_identity existed still make a table, which says they lack it."""
    root = tmp_path / "output"
    for seed in (1, 2):
        write(root, "dtd", "AR", seed, 60.0 + seed)
    rc, out, err = table(capsys, root)
    assert rc == 0 and table_rows(out, "16 shots") == {"AR": ["61.5 +- 0.5 (2)", "61.5"]}
    assert "no recorded data identity (results.json from before data_identity was recorded) for results of AR" in out
    write(root, "dtd", "AR", 3, 20.0, data_identity={"split": "aa11"})
    rc, out, err = table(capsys, root)
    assert rc == 1 and "differing keys data_identity, data_identity.split" in err
    rc, out, err = table(capsys, root, "--split-conflicts")
    assert table_rows(out, "16 shots") == {"AR [data_identity.split=aa11]": ["20.0 +- 0.0 (1)", "20.0"],
                                           "AR [data_identity=not recorded]": ["61.5 +- 0.5 (2)", "61.5"]}


def test_protocol_tables_follow_the_same_rule(tmp_path, capsys):
    root = tmp_path / "b2n"
    write(root, "train_base/dtd", "AR", 1, 80.0, classes="base")
    write(root, "train_base/dtd2", "AR", 2, 70.0, classes="base", optim={"LR": 2.0})
    write(root, "test_new/dtd", "AR", 1, 50.0, classes="new")
    write(root, "test_new/dtd2", "AR", 2, 40.0, classes="new", optim={"LR": 2.0})
    rc, out, err = table(capsys, root, "--protocol", "base2new")
    assert rc == 1 and "DescribableTextures [base]" in err and "differing keys OPTIM.LR" in err
    rc, out, err = table(capsys, root, "--protocol", "base2new", "--split-conflicts")
    assert rc == 0
    assert [line.split("  ")[0] for line in out.splitlines() if line.startswith("AR")] == \
        ["AR [OPTIM.LR=0.1]"] * 2 + ["AR [OPTIM.LR=2.0]"] * 2


def test_plot_curves_never_join_different_settings_and_say_why_average_is_empty(tmp_path, capsys, monkeypatch):
    """Old code: one AR point over both learning rates, and an Average panel left blank without a word."""
    import matplotlib.axes

    root = tmp_path / "output"
    lr_sweep(root)
    write(root, "eurosat", "VP", 1, 70.0, dataset="EuroSAT")
    assert plot_curves.main([str(root), "--out", str(tmp_path / "plots")]) == 1
    err = capsys.readouterr().err
    assert "ERROR:" in err and "differing keys OPTIM.LR, OPTIM.MAX_EPOCH" in err
    assert not (tmp_path / "plots").exists()

    texts = []
    real_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, *a, **k: (
        texts.append(s), real_text(self, x, y, s, *a, **k))[1])
    assert plot_curves.main([str(root), "--out", str(tmp_path / "plots"), "--split-conflicts"]) == 0
    err = capsys.readouterr().err
    with open(tmp_path / "plots" / "curves.csv") as f:
        rows = {(r["dataset"], r["method"]): (r["mean"], r["seeds"]) for r in csv.DictReader(f)}
    assert rows[("DescribableTextures", "AR [OPTIM.LR=0.1, OPTIM.MAX_EPOCH=2]")] == ("15.0000", "2")
    assert rows[("DescribableTextures", "AR [OPTIM.LR=1.0, OPTIM.MAX_EPOCH=5]")] == ("10.0000", "1")
    assert not any(dataset == "Average" for dataset, _ in rows)
    why = "the Average panel is empty: no method has a result for every dataset"
    assert why in err and "VP lacks Caltech101, DescribableTextures" in err
    assert any("no method has a result for every dataset" in " ".join(t.split()) for t in texts)


def test_dataset_columns_are_split_by_the_key_their_loader_declares(tmp_path, capsys, monkeypatch):
    """The column key is a fact of the dataset loader (catalogue column_key), not a list in the table code."""
    rows = json.loads((REPO_PATH / "runs" / "datasets.json").read_text())
    for row in rows:
        if row["name"] == "EuroSAT":
            row["column_key"] = {"key": "BANDS", "default": "rgb"}
    (tmp_path / "datasets.json").write_text(json.dumps(rows))
    monkeypatch.setenv("VR_DATASET_CATALOGUE", str(tmp_path / "datasets.json"))
    root = tmp_path / "output"
    write(root, "eurosat", "AR", 1, 70.0, dataset="EuroSAT")
    folder = write(root, "eurosat_ms", "AR", 1, 75.0, dataset="EuroSAT")
    path = folder / "results.json"
    data = json.loads(path.read_text())
    data["config"]["DATASET"]["BANDS"] = "multispectral"
    path.write_text(json.dumps(data))
    rc, out, err = table(capsys, root, "--split-conflicts")
    header = next(line for line in out.splitlines() if line.startswith("Method"))
    assert rc == 0 and "EuroSAT (multispectral)" in header
    assert table_rows(out, "16 shots")["AR"][:2] == ["70.0 +- 0.0 (1)", "75.0 +- 0.0 (1)"]


def test_results_library_imports_no_torch_and_nothing_above_it():
    upper = {"scripts", "trainers", "datasets", "backbones", "vr", "descriptions", "plugins", "train"}
    found = imports_of(["results"], upper)
    assert not found, "\n".join(found)
    code = ("import sys, results.records, results.fewshot, results.protocol_tables, results.curves, "
            "results.render, results.coop_logs; print(sorted(m for m in ('torch', 'trainers', 'datasets') "
            "if m in sys.modules))")
    proc = run_cmd([sys.executable, "-c", code])
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


REPO_PATH = __import__("pathlib").Path(REPO)


@pytest.mark.parametrize("script", ["make_table", "plot_curves"])
def test_split_flag_is_in_the_help(script):
    proc = run_cmd([sys.executable, f"scripts/{script}.py", "--help"])
    assert proc.returncode == 0 and "--split-conflicts" in proc.stdout
