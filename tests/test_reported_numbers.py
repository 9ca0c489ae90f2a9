"""results/reported.py against the facts sheets it transcribes, and make_table.py --reported with them.

Every number reported.py holds is parsed back out of ../shared/docs/methods.md (ViT-B/16 16-shot VR table,
zero-shot and DVP-cse lines) and ../shared/docs/baselines.md section 9 (RN50 16-shot Tip-Adapter table;
base-to-new averages and CoCoOp's confirmed per-dataset values); the few-shot table prints the RN50 rows for
RN50 runs (Tip-Adapter-F marked test-selected) and the base-to-new table the published averages, each row's
source under the table.
"""
import re

import pytest

from results import reported
from tests.conftest import SHARED
from tests.result_files import write_run
from tests.script_helpers import table, table_rows

DOCS = f"{SHARED}/docs"

# The facts sheets' abbreviations and row names -> DATASET.NAME / trainer names.
DATASET_ABBREVIATIONS = {
    "INet": "ImageNet", "ImageNet": "ImageNet", "Calt": "Caltech101", "Cal": "Caltech101", "Pets": "OxfordPets",
    "Cars": "StanfordCars", "Flow": "OxfordFlowers", "Flw": "OxfordFlowers", "Food": "Food101",
    "FGVC": "FGVCAircraft", "Air": "FGVCAircraft", "SUN": "SUN397", "DTD": "DescribableTextures",
    "Euro": "EuroSAT", "ESAT": "EuroSAT", "EuroSAT": "EuroSAT", "UCF": "UCF101", "RES": "Resisc45",
}
METHOD_NAMES = {"zero-shot CLIP": "ZeroshotCLIP", "CLIP (zero-shot)": "ZeroshotCLIP", "Tip-Adapter": "TipAdapter",
                "Tip-Adapter-F": "TipAdapterF", "CLIP-Adapter (Tip's re-run)": "CLIPAdapter", "CoOp": "CoOp",
                "CoCoOp": "CoCoOp", "KgCoOp": "KgCoOp", "MaPLe": "MaPLe", "VP": "VP", "AR": "AR",
                "AttrVR": "AttrVR", "DVP-cls": "DVP_CLS"}

# base-to-new rows transcribed from baselines-2.md instead (checked in tests/test_trainers_deep_prompts.py)
FROM_BASELINES_2 = frozenset({"IVLP", "VPT", "PromptSRC"})


def read_doc(name):
    try:
        with open(f"{DOCS}/{name}", encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        pytest.skip(f"../shared/docs/{name} is not present (the facts sheet the reported numbers come from)")


def section(text, heading):
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def markdown_tables(text):
    """Each markdown table in text as (header cells, [row cells])."""
    tables, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            tables.append((rows[0], rows[1:]))
            rows = []
    return tables


def fewshot_table(table_text):
    """{trainer: {DATASET.NAME: value}} and {trainer: avg} of one facts-sheet table."""
    header, body = table_text
    values, averages = {}, {}
    for row in body:
        method = METHOD_NAMES[row[0]]
        for name, cell in zip(header[1:], row[1:], strict=False):
            if name.lower() == "avg":
                averages[method] = float(cell)
            else:
                values.setdefault(method, {})[DATASET_ABBREVIATIONS[name]] = float(cell)
    return values, averages


def named_values(line):
    """'Air 40.3, Cars 72.5' -> {DATASET.NAME: value}."""
    return {DATASET_ABBREVIATIONS[name]: float(v) for name, v in re.findall(r"\b([A-Za-z]+) (\d+\.\d+)", line)}


def test_rn50_rows_equal_baselines_md_section_9():
    tables = markdown_tables(section(read_doc("baselines.md"), "## 9. Reported numbers"))
    values, averages = fewshot_table(tables[0])
    assert reported.REPORTED_BY_PROTOCOL[("RN50", 16)] == values
    assert averages == reported.REPORTED_RN50_AVG
    # "Tip-Adapter-F rows are test-selected"; pitfall 1: Tip-Adapter's ImageNet alpha / beta search is on test
    assert reported.TEST_SELECTED[("RN50", 16)] == {"TipAdapterF": reported.EVERY_DATASET,
                                                     "TipAdapter": {"ImageNet"}}
    pitfalls = section(read_doc("baselines.md"), "## 10. Pitfalls")
    assert "Tip-Adapter-F's epoch" in pitfalls and "ImageNet α/β search" in pitfalls
    assert set(reported.SOURCES[("RN50", 16)]) == set(values)


def test_base_to_new_numbers_equal_baselines_md_section_9():
    text = section(read_doc("baselines.md"), "## 9. Reported numbers")
    header, body = markdown_tables(text)[1]
    assert header == ["method", "base", "new", "HM", "source"]
    averages = {METHOD_NAMES[row[0]]: tuple(float(v) for v in row[1:4]) for row in body}
    in_doc = {m: rows for m, rows in reported.REPORTED_BASE2NEW.items() if m not in FROM_BASELINES_2}
    assert {m: rows[reported.AVERAGE] for m, rows in in_doc.items()} == averages
    confirmed = re.search(r"Per-dataset CoCoOp values confirmed: (.*?)\.\s*The others", text, re.S).group(1)
    per_dataset = {DATASET_ABBREVIATIONS[name]: tuple(float(v) for v in (b, n, h))
                   for name, b, n, h in re.findall(r"\b(\w+) (\d+\.\d+)/(\d+\.\d+)/(\d+\.\d+)", confirmed)}
    assert len(per_dataset) == 3
    held = {k: v for k, v in reported.REPORTED_BASE2NEW["CoCoOp"].items() if k != reported.AVERAGE}
    assert held == per_dataset
    for method, rows in in_doc.items():
        assert set(rows) <= {reported.AVERAGE} | set(per_dataset)  # no per-dataset number the doc does not hold
        source = next(row[4] for row in body if METHOD_NAMES[row[0]] == method)
        assert reported.BASE2NEW_SOURCES[method].split(" (")[0] in source


def test_vit_b16_rows_equal_methods_md():
    text = section(read_doc("methods.md"), "## Reported accuracy (16-shot, %, ViT-B/16")
    values, averages = fewshot_table(markdown_tables(text)[0])
    rows = reported.REPORTED_BY_PROTOCOL[(reported.BACKBONE, reported.SHOTS)]
    assert {m: rows[m] for m in values} == values
    assert averages == reported.REPORTED_AVG
    lines = " ".join(text.split())
    assert rows["DVP_CSE"] == named_values(re.search(r"DVP-cse \(partial\): (.*?);", lines).group(1))
    zero_shot = re.search(r"Zero-shot CLIP ViT-B/16 with CoOp's class names: (.*?)\. Trainable", lines).group(1)
    assert rows["ZeroshotCLIP"] == named_values(zero_shot)
    assert set(rows) == set(values) | {"DVP_CSE", "ZeroshotCLIP", "CLIPLoRA"}  # CLIPLoRA: baselines-2.md


# ---- make_table.py --reported with them -------------------------------------------------------------------
def test_fewshot_reported_rows_follow_the_runs_backbone_and_mark_test_selected_rows(tmp_path, capsys):
    root = tmp_path / "out"
    for method, acc in (("TipAdapterF", 70.0), ("ZeroshotCLIP", 40.0)):
        write_run(root, "dtd", method, 1, acc, dataset="DescribableTextures", backbone="RN50")
        write_run(root, "eurosat", method, 1, acc + 5, dataset="EuroSAT", backbone="RN50")
    rc, out, err = table(capsys, root, "--reported")
    assert rc == 0, err
    rows = table_rows(out, "16 shots, RN50")
    tip = reported.REPORTED_RN50["TipAdapterF"]
    zs = reported.REPORTED_RN50["ZeroshotCLIP"]
    mark = "\u2020"
    avg = (tip["DescribableTextures"] + tip["EuroSAT"]) / 2
    assert rows["TipAdapterF (reported)"] == [f"{tip['DescribableTextures']:.1f} {mark}",
                                              f"{tip['EuroSAT']:.1f} {mark}", f"{avg:.1f} {mark}"]
    assert rows["ZeroshotCLIP (reported)"] == [f"{zs['DescribableTextures']:.1f}", f"{zs['EuroSAT']:.1f}",
                                               f"{(zs['DescribableTextures'] + zs['EuroSAT']) / 2:.1f}"]
    assert f"{mark} hyper-parameters chosen on the test set: not comparable" in out
    assert "TipAdapterF (reported, RN50, 16 shots): gaopengcuhk/Tip-Adapter exp.log" in out
    assert "TEST-SELECTED" in out and "ZeroshotCLIP (reported, RN50, 16 shots)" in out
    assert "TipAdapterF (reported): RN50 16-shot numbers only" not in out  # it has its row here

    write_run(root, "imagenet", "TipAdapter", 1, 60.0, dataset="ImageNet", backbone="RN50")
    rc, out, _ = table(capsys, root, "--reported")
    rows = table_rows(out, "16 shots, RN50")
    header = next(line for line in out.splitlines() if line.startswith("Method"))
    columns = [c.strip() for c in header.split("  ") if c.strip()][1:]
    tip_row = dict(zip(columns, rows["TipAdapter (reported)"], strict=False))
    assert tip_row["ImageNet"] == f"{reported.REPORTED_RN50['TipAdapter']['ImageNet']:.1f} {mark}"  # on test
    assert tip_row["DescribableTextures"] == f"{reported.REPORTED_RN50['TipAdapter']['DescribableTextures']:.1f}"

    vit = tmp_path / "vit"
    write_run(vit, "dtd", "TipAdapterF", 1, 70.0, dataset="DescribableTextures")
    rc, out, _ = table(capsys, vit, "--reported")
    assert "(reported)" not in table_rows(out, "16 shots, ViT-B/16")  # RN50 numbers stay out of a ViT table
    assert "TipAdapterF (reported): RN50 16-shot numbers only" in out


def test_base2new_reported_rows_and_sources(tmp_path, capsys):
    root = tmp_path / "b2n"
    for method in ("CoCoOp", "AR"):
        for seed in (1, 2):
            for classes, acc in (("base", 80.0), ("new", 60.0)):
                write_run(root, f"{classes}/eurosat", method, seed, acc + seed, dataset="EuroSAT",
                          dataset_cfg={"SUBSAMPLE_CLASSES": classes})
    rc, plain, _ = table(capsys, root, "--protocol", "base2new")
    assert rc == 0 and "(reported)" not in plain
    rc, out, err = table(capsys, root, "--protocol", "base2new", "--reported", "--decimals", "2")
    assert rc == 0, err
    lines = [[p.strip() for p in line.split("  ") if p.strip()] for line in out.splitlines()]
    published = [row for row in lines if row and row[0] == "CoCoOp (reported)"]
    assert published == [["CoCoOp (reported)", "EuroSAT", "87.49", "60.04", "71.21"],
                         ["CoCoOp (reported)", "Average (published, 11 datasets)", "80.47", "71.69", "75.83"]]
    labels = [row[0] for row in lines if row and row[0] in ("CoCoOp", "CoCoOp (reported)", "AR")]
    assert labels == ["AR", "AR", "CoCoOp", "CoCoOp", "CoCoOp (reported)", "CoCoOp (reported)"]  # after its own
    assert not any(row and row[0] == "AR (reported)" for row in lines)  # AR publishes no base-to-new numbers
    assert "CoCoOp (reported, base-to-new, ViT-B/16, 16 shots): CoCoOp Table 1" in out
    rc, out, _ = table(capsys, root, "--protocol", "base2new", "--reported-all", "--decimals", "2")
    lines = [[p.strip() for p in line.split("  ") if p.strip()] for line in out.splitlines()]
    assert ["MaPLe (reported)", "Average (published, 11 datasets)", "82.28", "75.14", "78.55"] in lines
    assert "MaPLe (reported, base-to-new, ViT-B/16, 16 shots): MaPLe README" in out


def test_every_catalogued_trainer_has_reported_numbers_or_a_stated_reason():
    """A method added to the catalogue says what --reported prints for it: rows, or why there are none."""
    from runs import catalogue

    covered = set(reported.UNAVAILABLE) | set(reported.REPORTED_BASE2NEW)
    for rows in reported.REPORTED_BY_PROTOCOL.values():
        covered |= set(rows)
    missing = [m.trainer for m in catalogue.load(str(catalogue.DEFAULT_PATH)).values() if m.trainer not in covered]
    assert not missing, f"results/reported.py has neither rows nor an UNAVAILABLE note for {missing}"
