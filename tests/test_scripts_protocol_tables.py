"""The protocol tables and curves of make_table.py / plot_curves.py: dataset keys (one column per dataset
variant), base-to-new (HM) and cross-dataset / domain-generalisation tables, few-shot curves, and the flags in
results.json (untrained, test-selected) they honour."""
import json

import pytest

from results import names
from tests.fake_workspace import REPO
from tests.result_files import flag_result as flag
from tests.result_files import write_run
from tests.script_helpers import cell, load_script, pstd, table, table_rows

# ------------------------------------------------------------------ dataset keys (issue 10, defect 4)

def test_digits_shifts_and_imagefolders_are_separate_columns(tmp_path, capsys):
    """Old code: one 'Digits' column with the first shift's numbers, the other shift dropped."""
    root = tmp_path / "out"
    for seed, (tinted, inverted) in enumerate([(80.0, 40.0), (82.0, 42.0)], 1):
        write_run(root, "digits_tinted", "AR", seed, tinted, dataset="Digits",
                  dataset_cfg={"DIGITS_SHIFT": "tinted"})
        write_run(root, "digits_inverted", "AR", seed, inverted, dataset="Digits",
                  dataset_cfg={"DIGITS_SHIFT": "inverted"})
        write_run(root, "imagefolder_a", "AR", seed, 60.0 + seed, dataset="ImageFolder",
                  dataset_cfg={"IMAGEFOLDER_DIR": "pets", "ROOT": "/data"})
        write_run(root, "imagefolder_b", "AR", seed, 70.0 + seed, dataset="ImageFolder",
                  dataset_cfg={"IMAGEFOLDER_DIR": "/elsewhere/cars", "ROOT": "/data"})
    rc, out, err = table(capsys, root)
    assert rc == 0 and "duplicate" not in err
    header = next(line for line in out.splitlines() if line.startswith("Method"))
    for column in ("Digits (tinted)", "Digits (inverted)", "ImageFolder (/data/pets)",
                   "ImageFolder (/elsewhere/cars)"):
        assert column in header
    rows = table_rows(out, "16 shots")
    cols = [c.strip() for c in header.split("  ") if c.strip()][1:]
    ar = dict(zip(cols, rows["AR"], strict=False))
    assert ar["Digits (tinted)"] == cell([80.0, 82.0])
    assert ar["Digits (inverted)"] == cell([40.0, 42.0])
    assert ar["ImageFolder (/data/pets)"] == cell([61.0, 62.0])
    assert ar["ImageFolder (/elsewhere/cars)"] == cell([71.0, 72.0])


def test_duplicate_cell_is_reported_not_dropped_silently(tmp_path, capsys):
    root = tmp_path / "out"
    first = write_run(root, "a/digits_tinted", "AR", 1, 80.0, dataset="Digits",
                      dataset_cfg={"DIGITS_SHIFT": "tinted"})
    second = write_run(root, "b/digits_tinted", "AR", 1, 10.0, dataset="Digits",
                       dataset_cfg={"DIGITS_SHIFT": "tinted"})
    rc, out, err = table(capsys, root)
    assert rc == 0
    assert f"duplicate result: {second}/results.json" in err and f"{first}/results.json" in err
    assert "1 duplicate result(s) left out" in out  # the table itself says so
    assert table_rows(out, "16 shots")["AR"][0] == cell([80.0])


def test_dataset_key_from_config():
    key = names.dataset_key
    assert key({"dataset": "Caltech101", "config": {}}) == "Caltech101"
    assert key({"dataset": "Digits", "config": {"DATASET": {"DIGITS_SHIFT": "none"}}}) == "Digits"
    assert key({"dataset": "Digits", "config": {"DATASET": {"DIGITS_SHIFT": "noisy"}}}) \
        == "Digits (noisy)"
    assert key({"dataset": "ImageFolder",
                "config": {"DATASET": {"ROOT": "/d/", "IMAGEFOLDER_DIR": "x/"}}}) == "ImageFolder (/d/x)"


# ------------------------------------------------------------------ base-to-new table

BASE = {"Caltech101": [98.0, 97.0, 96.0], "EuroSAT": [90.0, 92.0, 94.0]}
NEW = {"Caltech101": [94.0, 93.0, 95.0], "EuroSAT": [60.0, 70.0]}  # EuroSAT seed 3: no new run


def hm(a, b):
    return 2 * a * b / (a + b)


def mean(values):
    return sum(values) / len(values)


def base2new_tree(root, with_new=True):
    for dataset, values in BASE.items():
        for seed, acc in enumerate(values, 1):
            write_run(root, f"train_base/{dataset}", "AR", seed, acc, dataset=dataset,
                      dataset_cfg={"SUBSAMPLE_CLASSES": "base"})
    if with_new:
        for dataset, values in NEW.items():
            for seed, acc in enumerate(values, 1):
                write_run(root, f"test_new/{dataset}", "AR", seed, acc, dataset=dataset,
                          dataset_cfg={"SUBSAMPLE_CLASSES": "new"})
    write_run(root, "all/Caltech101", "AR", 1, 50.0, dataset="Caltech101")  # not in this protocol


def test_base2new_table_hm_and_missing_seed(tmp_path, capsys):
    root = tmp_path / "b2n"
    base2new_tree(root)
    rc, out, err = table(capsys, root, "--protocol", "base2new")
    assert rc == 0, err
    assert "no new-class result for AR EuroSAT 16 shots ViT-B/16 seed 3" in err
    rows = table_rows(out, "base-to-new, 16 shots", key_column=1)  # keyed by the dataset, after the method
    cal_b, cal_n = mean(BASE["Caltech101"]), mean(NEW["Caltech101"])
    eur_b, eur_n = mean(BASE["EuroSAT"]), mean(NEW["EuroSAT"])
    assert rows["Caltech101"] == [cell(BASE["Caltech101"]), cell(NEW["Caltech101"]),
                                  f"{hm(cal_b, cal_n):.1f}"]
    assert rows["EuroSAT"] == [cell(BASE["EuroSAT"]), cell(NEW["EuroSAT"]), f"{hm(eur_b, eur_n):.1f}"]
    avg_b, avg_n = (cal_b + eur_b) / 2, (cal_n + eur_n) / 2
    assert rows["Average"] == [f"{avg_b:.1f}", f"{avg_n:.1f}", f"{hm(avg_b, avg_n):.1f}"]
    assert "50.0" not in out  # the all-class run is not a base or new result


def test_base2new_without_new_runs_names_them(tmp_path, capsys):
    root = tmp_path / "b2n"
    base2new_tree(root, with_new=False)
    rc, out, err = table(capsys, root, "--protocol", "base2new")
    assert rc == 1 and out == ""
    assert "no new-class results" in err
    for dataset, values in BASE.items():
        for seed in range(1, len(values) + 1):
            assert f"no new-class result for AR {dataset} 16 shots ViT-B/16 seed {seed}" in err


# ------------------------------------------------------------------ xd / dg tables

def test_xd_and_dg_tables(tmp_path, capsys):
    root = tmp_path / "xd"
    targets = {"Caltech101": "caltech101", "DescribableTextures": "dtd"}
    for seed in (1, 2):
        write_run(root, "train/imagenet", "AR", seed, 70.0 + seed, dataset="ImageNet")
        for i, name in enumerate(targets):
            write_run(root, f"test/{name}", "AR", seed, 50.0 + 10 * i + seed, dataset=name)
        write_run(root, "test/imagenetv2", "AR", seed, 60.0 + seed, dataset="ImageNetV2")
        write_run(root, "test/imagenet_r", "AR", seed, 40.0 + seed, dataset="ImageNetR")
    rc, out, err = table(capsys, root, "--protocol", "dg")
    assert rc == 0
    header = next(line for line in out.splitlines() if line.startswith("Method")).split()
    assert header == ["Method", "ImageNet", "(source)", "ImageNetV2", "ImageNetSketch", "ImageNetA",
                      "ImageNetR", "Average"]
    assert table_rows(out, "domain generalisation")["AR"] == [
        cell([71.0, 72.0]), cell([61.0, 62.0]), "-", "-", cell([41.0, 42.0]), "-"]
    assert "no result for target(s) ImageNetSketch, ImageNetA" in err

    rc, out, err = table(capsys, root, "--protocol", "xd")
    header = next(line for line in out.splitlines() if line.startswith("Method")).split()
    assert header[:4] == ["Method", "ImageNet", "(source)", "Caltech101"]
    assert len(header) == 4 + 10 and "ImageNetV2" not in header  # ten targets + Average
    row = table_rows(out, "cross-dataset transfer")["AR"]
    assert row[0] == cell([71.0, 72.0]) and row[1] == cell([51.0, 52.0])
    assert row[-1] == "-"  # not every target present: no average
    assert "no result for target(s) OxfordPets" in err


# ------------------------------------------------------------------ few-shot curves

def test_plot_curves_png_and_csv(tmp_path, capsys):
    import csv

    plot_curves = load_script("plot_curves")
    root = tmp_path / "out"
    acc = {("AR", "Caltech101", 1): [80.0, 82.0], ("AR", "Caltech101", 16): [90.0, 94.0],
           ("AR", "EuroSAT", 1): [50.0, 54.0], ("AR", "EuroSAT", 16): [70.0, 72.0],
           ("VP", "Caltech101", 4): [85.0], ("VP", "Caltech101", 16): [88.0, 89.0]}
    for (method, dataset, shots), values in acc.items():
        for seed, value in enumerate(values, 1):
            write_run(root, dataset, method, seed, value, dataset=dataset, shots=shots)
    write_run(root, "b2n", "AR", 1, 10.0, dataset="EuroSAT", dataset_cfg={"SUBSAMPLE_CLASSES": "base"})
    assert plot_curves.main([str(root), "--out", str(tmp_path / "plots")]) == 0
    png = tmp_path / "plots" / "curves_vit_b_16.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
    with open(tmp_path / "plots" / "curves.csv") as f:
        rows = {(r["dataset"], r["method"], int(r["shots"])): r for r in csv.DictReader(f)}
    for (method, dataset, shots), values in acc.items():
        row = rows[(dataset, method, shots)]
        assert float(row["mean"]) == pytest.approx(mean(values), abs=1e-4)
        assert float(row["std"]) == pytest.approx(pstd(values), abs=1e-4)
        assert int(row["seeds"]) == len(values)
    # Average: the mean of the dataset means, only where a method has every dataset (VP has one)
    avg = rows[("Average", "AR", 1)]
    assert float(avg["mean"]) == pytest.approx((81.0 + 52.0) / 2, abs=1e-4)
    assert float(avg["std"]) == pytest.approx(pstd([(80 + 50) / 2, (82 + 54) / 2]), abs=1e-4)
    assert not any(k[0] == "Average" and k[1] == "VP" for k in rows)
    assert ("EuroSAT", "AR", 16) in rows and all(r["mean"] != "10.0000" for r in rows.values())

    assert plot_curves.main([str(tmp_path / "nothing")]) == 2
    assert "ERROR:" in capsys.readouterr().err


def test_fewshot_table_leaves_out_transfer_tests_and_xd_reads_the_output_root(tmp_path, capsys):
    """An xd test on Caltech101 (trained on ImageNet) is not a Caltech101 few-shot result."""
    root = tmp_path / "output"
    write_run(root, "caltech101", "AR", 1, 95.0, dataset="Caltech101")
    write_run(root, "xd/train/imagenet", "AR", 1, 70.0, dataset="ImageNet")
    write_run(root, "xd/test/caltech101", "AR", 1, 88.0, dataset="Caltech101")
    rc, out, err = table(capsys, root)
    assert rc == 0 and "duplicate" not in err
    assert "left out 1 cross-dataset test result(s) under xd/test/" in err
    assert table_rows(out, "16 shots")["AR"] == [cell([95.0]), cell([70.0]), f"{(95 + 70) / 2:.1f}"]
    rc, out, err = table(capsys, root, "--protocol", "xd")
    row = table_rows(out, "cross-dataset transfer")["AR"]
    assert row[:2] == [cell([70.0]), cell([88.0])]  # the few-shot Caltech101 run is not a target


# ------------------------------------------------------------------ flags in results.json, protocol trees

def test_xd_and_dg_without_xd_runs_are_an_error_not_fewshot_numbers(tmp_path, capsys):
    """Old code: with no scripts/xd.sh folders, ordinary few-shot runs were printed as transfer results."""
    root = tmp_path / "output"
    write_run(root, "imagenet", "AR", 1, 70.0, dataset="ImageNet")
    write_run(root, "caltech101", "AR", 1, 95.0, dataset="Caltech101")
    write_run(root, "imagenetv2", "AR", 1, 60.0, dataset="ImageNetV2")
    for protocol in ("xd", "dg"):
        rc, out, err = table(capsys, root, "--protocol", protocol)
        assert rc == 1 and "95.0" not in out
        assert f"error: no scripts/xd.sh runs under {root}; run bash scripts/xd.sh METHOD first" in err


def test_transfer_cells_are_keyed_by_dataset_name_when_display_names_differ(tmp_path, capsys, monkeypatch):
    """Old code: a loader whose display_name differs from its name had every cell '-' (display-name keys
    looked up by DATASET.NAME) and showed up again as an extra target."""
    rows = json.loads((REPO / "runs" / "datasets.json").read_text())
    shown = {"ImageNet": "ImageNet-1k", "Caltech101": "Caltech-101", "ImageNetV2": "ImageNet-V2"}
    for row in rows:
        row["display_name"] = shown.get(row["name"], row["display_name"])
    (tmp_path / "datasets.json").write_text(json.dumps(rows))
    monkeypatch.setenv("VR_DATASET_CATALOGUE", str(tmp_path / "datasets.json"))
    root = tmp_path / "xd"
    write_run(root, "train/imagenet", "AR", 1, 70.0, dataset="ImageNet")
    write_run(root, "test/caltech101", "AR", 1, 88.0, dataset="Caltech101")
    write_run(root, "test/imagenetv2", "AR", 1, 60.0, dataset="ImageNetV2")
    rc, out, err = table(capsys, root, "--protocol", "xd")
    assert rc == 0 and "no ImageNet (source) result" not in err
    header = next(line for line in out.splitlines() if line.startswith("Method")).split()
    assert header[:4] == ["Method", "ImageNet-1k", "(source)", "Caltech-101"] and len(header) == 14
    assert table_rows(out, "cross-dataset transfer")["AR"][:2] == [cell([70.0]), cell([88.0])]
    assert "Caltech101" not in err.split("no result for target(s)")[-1]
    rc, out, err = table(capsys, root, "--protocol", "dg")
    assert table_rows(out, "domain generalisation")["AR"][:2] == [cell([70.0]), cell([60.0])]


def test_protocol_tables_mark_test_selected_results(tmp_path, capsys):
    """Old code: a test-selected LinearProbe number looked like the others in the xd and base2new tables."""
    note = "\u2020 hyper-parameters chosen on the test set: not comparable"
    root = tmp_path / "xd"
    flag(write_run(root, "train/imagenet", "LinearProbe", 1, 70.0, dataset="ImageNet"),
         linearprobe={"hp_selection": "val", "test_selected": True})
    write_run(root, "test/imagenetv2", "LinearProbe", 1, 60.0, dataset="ImageNetV2")
    write_run(root, "train/imagenet", "AR", 1, 71.0, dataset="ImageNet")
    rc, out, _ = table(capsys, root, "--protocol", "dg")
    rows = table_rows(out, "domain generalisation")
    assert rows["LinearProbe"][:2] == [cell([70.0]) + " \u2020", cell([60.0])]
    assert rows["AR"][0] == cell([71.0]) and out.rstrip().endswith(note)
    rc, tex, _ = table(capsys, root, "--protocol", "dg", "--format", "latex")
    assert r"70.0 $\pm$ 0.0 (1) $^\dagger$" in tex and f"% {note}" in tex

    root = tmp_path / "b2n"
    base = {"SUBSAMPLE_CLASSES": "base"}
    flag(write_run(root, "dtd", "LPPlusPlus", 1, 80.0, dataset="DescribableTextures", dataset_cfg=base),
         lpplusplus={"test_selected": True})
    write_run(root, "dtd_new", "LPPlusPlus", 1, 40.0, dataset="DescribableTextures",
              dataset_cfg={"SUBSAMPLE_CLASSES": "new"})
    rc, out, _ = table(capsys, root, "--protocol", "base2new")
    lines = [line for line in out.splitlines() if line.startswith("LPPlusPlus")]
    assert lines[0].split("  ")[-1].strip() == f"{hm(80.0, 40.0):.1f} \u2020"
    assert f"{cell([80.0])} \u2020" in lines[0] and f"{cell([40.0])} \u2020" not in lines[0]
    assert out.rstrip().endswith(note)


def test_plot_curves_leave_out_untrained_and_test_selected_results(tmp_path, capsys):
    import csv

    plot_curves = load_script("plot_curves")
    root = tmp_path / "out"
    write_run(root, "dtd", "AR", 1, 60.0, dataset="DescribableTextures")
    flag(write_run(root, "dtd", "AR", 2, 2.0, dataset="DescribableTextures"), untrained=True)
    picked = write_run(root, "dtd", "LinearProbe", 1, 99.0, dataset="DescribableTextures")
    flag(picked, linearprobe={"hp_selection": "test", "test_selected": True})
    assert plot_curves.main([str(root), "--out", str(tmp_path / "plots")]) == 0
    err = capsys.readouterr().err
    assert "skipping" in err and "untrained" in err
    assert "left out 1 test-selected result(s)" in err and str(picked) in err
    with open(tmp_path / "plots" / "curves.csv") as f:
        rows = [(r["method"], r["mean"], r["seeds"]) for r in csv.DictReader(f)]
    assert rows == [("AR", "60.0000", "1")]
