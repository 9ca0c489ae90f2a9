"""scripts/parse_results.py (CoOp's parse_test_res.py output) and scripts/make_table.py."""
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from results import names, reported
from tests.result_files import flag_result
from tests.script_helpers import cell, load_script, pstd, table_rows
from tests.script_helpers import table as run_table

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


parse_results = load_script("parse_results")


# ------------------------------------------------------------------ parse_results

def train_log(acc, f1, early=12.5):
    """A Dassl training log: a mid-training test line before 'Finish training' (not counted)."""
    return (f"epoch [1/2] batch [1/1] loss 1.0\n=> result\n* accuracy: {early}%\n"
            f"Finish training\nElapsed: 0:00:03\nEvaluate on the *test* set\n=> result\n"
            f"* total: 1,000\n* correct: 951\n* accuracy: {acc}%\n* error: {100 - acc:.1f}%\n"
            f"* macro_f1: {f1}%\n")


def eval_log(acc):
    return f"Loading evaluator\n=> result\n* total: 50\n* accuracy: {acc}%\n* macro_f1: 1.0%\n"


def make_seeds(root, logs):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in logs.items():
        (root / name).mkdir()
        (root / name / "log.txt").write_text(text)
    return root


def run_parse(capsys, *argv):
    rc = parse_results.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_parse_matches_coop_output(tmp_path, capsys):
    accs = [95.1, 94.3, 96.0]
    d = make_seeds(tmp_path / "exp", {f"seed{i + 1}": train_log(a, 90.0 + i)
                                      for i, a in enumerate(accs)})
    (d / "seed3" / "log.txt").write_text(train_log(11.0, 92.0) + "=> result\n* accuracy: 96.0%\n")
    rc, out, _ = run_parse(capsys, d)
    assert rc == 0
    mean = sum(accs) / 3
    expected = [f"Parsing files in {d}"]
    expected += [f"file: {d}/seed{i + 1}/log.txt. accuracy: {a:.2f}%. " for i, a in enumerate(accs)]
    expected += ["===", f"Summary of directory: {d}",
                 f"* accuracy: {mean:.2f}% +- {pstd(accs):.2f}%", "==="]
    assert out.splitlines() == expected

    rc, out, _ = run_parse(capsys, d, "--ci95", "--keyword", "macro_f1")
    f1 = [90.0, 91.0, 92.0]
    assert f"* macro_f1: 91.00% +- {1.96 * pstd(f1) / math.sqrt(3):.2f}%" in out


def test_parse_eval_only_logs_need_test_log(tmp_path, capsys):
    d = make_seeds(tmp_path / "zs", {"seed1": eval_log(60.0), "seed2": eval_log(61.0)})
    rc, out, err = run_parse(capsys, d)
    assert rc == 1
    assert f"Nothing found in {d}" in err and "rerun with --test-log" in err
    rc, out, _ = run_parse(capsys, d, "--test-log")
    assert rc == 0 and "* accuracy: 60.50% +- 0.50%" in out

    helptext = subprocess.run([sys.executable, str(SCRIPTS / "parse_results.py"), "--help"],
                              capture_output=True, text=True).stdout
    assert "eval-only (zero-shot) logs" in helptext and "nothing is matched" in helptext


def test_parse_multi_exp_and_missing_logs(tmp_path, capsys):
    make_seeds(tmp_path / "all" / "a", {"seed1": train_log(80.0, 1.0),
                                        "seed2": train_log(82.0, 1.0)})
    make_seeds(tmp_path / "all" / "b", {"seed1": train_log(70.0, 1.0), "empty": ""})
    (tmp_path / "all" / "b" / "notes").mkdir()  # no log.txt: reported, not fatal
    rc, out, err = run_parse(capsys, tmp_path / "all", "--multi-exp")
    assert rc == 0
    assert "* accuracy: 81.00% +- 1.00%" in out and "* accuracy: 70.00% +- 0.00%" in out
    assert out.splitlines()[-2:] == ["Average performance", "* accuracy: 75.50%"]
    assert "no log.txt in" in err and "notes" in err


# ------------------------------------------------------------------ make_table

def write_result(root, dataset_dir, method, seed, acc, *, dataset, shots=16, cfg="vit_b16",
                 backbone="ViT-B/16", f1=None):
    folder = root / dataset_dir / method / f"{cfg}_{shots}shots" / f"seed{seed}"
    folder.mkdir(parents=True)
    data = {"method": method, "dataset": dataset, "backbone": backbone, "shots": shots,
            "seed": seed, "accuracy": acc, "macro_f1": acc - 1 if f1 is None else f1,
            "per_class": {}, "elapsed_s": 1.0, "git": None, "config": {}}
    (folder / "results.json").write_text(json.dumps(data))
    return folder


AR_CAL = [95.0, 95.5, 96.2]
AR_DTD = [61.0, 62.0]          # seed 3 missing
DVP_CAL = [96.0, 96.4, 95.9]   # DTD cell missing (its only result.json is corrupt)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "output"
    for seed, acc in enumerate(AR_CAL, 1):
        write_result(root, "caltech101", "AR", seed, acc, dataset="Caltech101")
    for seed, acc in enumerate(AR_DTD, 1):
        write_result(root, "dtd", "AR", seed, acc, dataset="DescribableTextures")
    for seed, acc in enumerate(DVP_CAL, 1):
        write_result(root, "caltech101", "DVP_CLS", seed, acc, dataset="Caltech101")
    bad = write_result(root, "dtd", "DVP_CLS", 1, 60.0, dataset="DescribableTextures")
    (bad / "results.json").write_text('{"method": "DVP_CLS", "accur')  # killed mid-write
    one = write_result(root, "caltech101", "AR", 1, 90.0, dataset="Caltech101", shots=1)
    data = json.loads((one / "results.json").read_text())
    del data["accuracy"]
    (one / "results.json").write_text(json.dumps(data))
    write_result(root, "caltech101", "AR", 2, 91.0, dataset="Caltech101", shots=1)
    write_result(root, "caltech101", "ZeroshotCLIP", 1, 92.0, dataset="Caltech101", shots=1)
    return root


def test_table_text_cells_missing_and_corrupt(tree, capsys):
    rc, out, err = run_table(capsys, tree)
    assert rc == 0
    assert f"skipping {tree}/dtd/DVP_CLS/vit_b16_16shots/seed1/results.json: results.json is corrupt (" in err
    assert (f"skipping {tree}/caltech101/AR/vit_b16_1shots/seed1/results.json: incomplete: "
            "missing key(s) accuracy") in err
    rows16 = table_rows(out, "16 shots, ViT-B/16")
    ar_avg = (sum(AR_CAL) / 3 + sum(AR_DTD) / 2) / 2
    assert rows16["AR"] == [cell(AR_CAL), cell(AR_DTD), f"{ar_avg:.1f}"]
    assert rows16["DVP_CLS"] == [cell(DVP_CAL), "-", "-"]
    assert list(rows16) == ["AR", "DVP_CLS"]
    rows1 = table_rows(out, "1 shots, ViT-B/16")
    assert rows1 == {"ZeroshotCLIP": ["92.0 +- 0.0 (1)", "92.0"], "AR": ["91.0 +- 0.0 (1)", "91.0"]}
    assert out.index("1 shots, ViT-B/16") < out.index("16 shots, ViT-B/16")
    header = out.splitlines()[out.splitlines().index(next(
        line for line in out.splitlines() if line.startswith("16 shots"))) + 1]
    assert header.split() == ["Method", "Caltech101", "DescribableTextures", "Avg"]


def test_table_markdown_csv_latex(tree, capsys, tmp_path):
    rc, md, _ = run_table(capsys, tree, "--format", "markdown")
    assert rc == 0
    assert "### 16 shots, ViT-B/16: accuracy (%)" in md
    assert "| Method " in md and f"| {cell(DVP_CAL)} " in md
    assert any(line.startswith("|--") or line.startswith("|:-") for line in md.splitlines())

    out_file = tmp_path / "tables" / "t.csv"
    rc, text, _ = run_table(capsys, tree, "--format", "csv", "--metric", "macro_f1",
                            "--out", out_file)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["shots", "backbone", "method", "Caltech101", "DescribableTextures", "Avg"]
    ar16 = next(r for r in rows if r[0] == "16" and r[2] == "AR")
    assert ar16[3] == cell([a - 1 for a in AR_CAL])
    assert ["1", "ViT-B/16", "AR", "90.0 +- 0.0 (1)", "90.0"] in [r[:4] + r[-1:] for r in rows]
    assert out_file.read_text() == text
    assert [p.name for p in out_file.parent.iterdir()] == ["t.csv"]  # no temp file left

    rc, tex, _ = run_table(capsys, tree, "--format", "latex", "--decimals", "2")
    assert r"\begin{tabular}" in tex and r"DVP\_CLS" in tex
    mean, sd = sum(DVP_CAL) / 3, pstd(DVP_CAL)
    assert f"{mean:.2f} $\\pm$ {sd:.2f} (3)" in tex


def test_table_reported_rows(tree, capsys):
    rc, out, err = run_table(capsys, tree, "--reported")
    assert rc == 0
    rows16 = table_rows(out, "16 shots, ViT-B/16")
    assert list(rows16) == ["AR", "AR (reported)", "DVP_CLS", "DVP_CLS (reported)"]
    assert rows16["AR (reported)"] == ["95.5", "62.0", f"{(95.5 + 62.0) / 2:.1f}"]
    assert rows16["DVP_CLS (reported)"] == ["96.0", "65.5", f"{(96.0 + 65.5) / 2:.1f}"]
    # 1-shot results get no 16-shot numbers; zero-shot numbers do not depend on shots.
    rows1 = table_rows(out, "1 shots, ViT-B/16")
    assert list(rows1) == ["ZeroshotCLIP", "ZeroshotCLIP (reported)", "AR"]
    assert rows1["ZeroshotCLIP (reported)"] == ["92.9", "92.9"]

    rc, out, _ = run_table(capsys, tree, "--reported-all")
    rows16 = table_rows(out, "16 shots, ViT-B/16")
    assert rows16["VP (reported)"] == ["93.5", "61.4", f"{(93.5 + 61.4) / 2:.1f}"]
    assert rows16["DVP_CSE (reported)"] == ["-", "66.7", "-"]

    rc, out, err = run_table(capsys, tree, "--reported", "--metric", "macro_f1")
    assert "(reported)" not in out and "no reported numbers apply" in err


def test_reported_numbers_match_published_averages():
    for method, avg in reported.REPORTED_AVG.items():
        values = reported.REPORTED[method]
        assert len(values) == 11
        assert round(sum(values.values()) / 11, 1) == avg
    for row in reported.REPORTED.values():
        assert set(row) <= set(names.dataset_order())


def test_table_duplicate_variants_and_bad_root(tmp_path, capsys):
    root = tmp_path / "out"
    write_result(root, "dtd", "AR", 1, 60.0, dataset="DescribableTextures")
    write_result(root, "dtd", "AR", 1, 70.0, dataset="DescribableTextures", cfg="vit_b16_ep50")
    rc, out, _ = run_table(capsys, root)
    rows = table_rows(out, "16 shots")
    assert rows == {"AR [vit_b16]": ["60.0 +- 0.0 (1)", "60.0"],
                    "AR [vit_b16_ep50]": ["70.0 +- 0.0 (1)", "70.0"]}
    write_result(root, "dtd", "CoOp", 1, 65.0, dataset="DescribableTextures")
    rc, out, _ = run_table(capsys, root, "--reported")
    assert "CoOp (reported): only an average is published" in out
    assert names.canonical_dataset("oxford_flowers") == "OxfordFlowers"
    assert names.canonical_dataset("dtd") == "DescribableTextures"

    rc, _, err = run_table(capsys, tmp_path / "nope")
    assert rc == 2 and "is not a directory" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run_table(capsys, tmp_path / "empty")
    assert rc == 1 and "no usable results.json" in err


def test_table_file_gets_the_usual_permissions(tree, capsys, tmp_path):
    """Issue 10 defect 9: a table written with --out is meant to be shared (umask 022: 0644, not 0600)."""
    import os

    out_file = tmp_path / "shared" / "table.md"
    old = os.umask(0o022)
    try:
        rc, _, _ = run_table(capsys, tree, "--format", "markdown", "--out", out_file)
    finally:
        os.umask(old)
    assert rc == 0 and (out_file.stat().st_mode & 0o777) == 0o644


def test_untrained_results_are_skipped_and_named(tmp_path, capsys):
    """Old code: an --eval-only run without --model-dir (initial parameters) became AR's cell."""
    root = tmp_path / "out"
    write_result(root, "dtd", "AR", 1, 60.0, dataset="DescribableTextures")
    bad = flag_result(write_result(root, "dtd", "AR", 2, 3.0, dataset="DescribableTextures"), untrained=True)
    write_result(root, "dtd", "ZeroshotCLIP", 1, 44.0, dataset="DescribableTextures")  # trains nothing, no flag
    rc, out, err = run_table(capsys, root)
    assert rc == 0
    assert table_rows(out, "16 shots") == {"ZeroshotCLIP": ["44.0 +- 0.0 (1)", "44.0"],
                                           "AR": ["60.0 +- 0.0 (1)", "60.0"]}
    assert f"warning: skipping {bad}: untrained" in err and "--model-dir" in err


def test_test_selected_results_are_marked_in_every_format(tmp_path, capsys):
    """Old code: a LinearProbe accuracy whose C was chosen on the test images looked like a held-out number."""
    root = tmp_path / "out"
    write_result(root, "caltech101", "AR", 1, 90.0, dataset="Caltech101")
    write_result(root, "dtd", "AR", 1, 60.0, dataset="DescribableTextures")
    for seed, acc in ((1, 80.0), (2, 82.0)):
        folder = write_result(root, "caltech101", "LinearProbe", seed, acc, dataset="Caltech101")
        flag_result(folder, linearprobe={"hp_selection": "test", "C": 0.1, "test_selected": seed == 2})
    write_result(root, "dtd", "LinearProbe", 1, 50.0, dataset="DescribableTextures")
    note = "\u2020 hyper-parameters chosen on the test set: not comparable"

    rc, out, _ = run_table(capsys, root)
    rows = table_rows(out, "16 shots")
    assert rows["LinearProbe"] == [cell([80.0, 82.0]) + " \u2020", "50.0 +- 0.0 (1)", f"{(81 + 50) / 2:.1f} \u2020"]
    assert rows["AR"] == ["90.0 +- 0.0 (1)", "60.0 +- 0.0 (1)", "75.0"]  # unmarked
    assert out.rstrip().endswith(note)

    rc, md, _ = run_table(capsys, root, "--format", "markdown")
    assert f"| {cell([80.0, 82.0])} \u2020 " in md and f"> {note}" in md
    rc, text, _ = run_table(capsys, root, "--format", "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert ["16", "ViT-B/16", "LinearProbe", cell([80.0, 82.0]) + " \u2020"] == rows[2][:4]
    assert rows[-1] == [f"# {note}"]
    rc, tex, _ = run_table(capsys, root, "--format", "latex")
    assert r"81.0 $\pm$ 1.0 (2) $^\dagger$" in tex and f"% {note}" in tex

    (root / "caltech101" / "LinearProbe").rename(tmp_path / "aside")  # no test-selected result: no note
    rc, out, _ = run_table(capsys, root)
    assert "\u2020" not in out
