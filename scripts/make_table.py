"""Result tables from the results.json files of a tree of runs.

One table per (shots, backbone): rows are trainers (results.json `method`), columns datasets
(`dataset`, the DATASET.NAME), cells `mean +- std (n seeds)`; `Avg` is the mean over the columns for
rows that have every column. Broken results.json files are reported on stderr and skipped, so a
table can be made while a sweep is still running.
"""
import argparse
import csv
import io
import json
import math
import os
import os.path as osp
import re
import sys
from collections import defaultdict, namedtuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import reported as reported_numbers  # noqa: E402  (scripts/reported.py)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from engine.io import atomic_write_text  # noqa: E402  (stdlib only)

FORMATS = ("text", "markdown", "csv", "latex")
METRICS = ("accuracy", "macro_f1")
RESULTS_NAME = "results.json"
MISSING = "-"

# Display order; names not listed follow, sorted.
METHOD_ORDER = ("ZeroshotCLIP", "VP", "AR", "AttrVR", "DVP_CSE", "DVP_CLS", "CoOp")
DATASET_ORDER = ("FGVCAircraft", "Caltech101", "StanfordCars", "DescribableTextures", "EuroSAT",
                 "OxfordFlowers", "Food101", "OxfordPets", "SUN397", "UCF101", "Resisc45",
                 "ImageNet")
# Config-file and loose spellings of the dataset names -> DATASET.NAME.
_DATASET_ALIASES = {"dtd": "DescribableTextures", "fgvc": "FGVCAircraft",
                    "flowers102": "OxfordFlowers", "oxfordflowers102": "OxfordFlowers",
                    "nwpuresisc45": "Resisc45"}

Record = namedtuple("Record", "method variant dataset backbone shots seed value path")
Cell = namedtuple("Cell", "mean std n")  # std and n are None for reported numbers
Row = namedtuple("Row", "label cells avg")
Table = namedtuple("Table", "shots backbone columns rows")


class BadResult(ValueError):
    """A results.json that cannot be used; the message says why."""


def _squash(name):
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def canonical_dataset(name):
    """DATASET.NAME for a dataset spelled as in results.json, a config name or loosely."""
    key = _squash(name)
    for known in DATASET_ORDER:
        if _squash(known) == key:
            return known
    return _DATASET_ALIASES.get(key, name)


def same_backbone(a, b):
    """ViT-B/16, ViT-B-16 and vit_b16 name the same backbone."""
    return _squash(a) == _squash(b)


def _order(names, preferred, key=lambda n: n):
    rank = {name: i for i, name in enumerate(preferred)}
    return sorted(names, key=lambda n: (rank.get(key(n), len(rank)), str(n)))


# ---------------------------------------------------------------- reading

def find_results(root):
    """All results.json paths under root, sorted (deterministic duplicate handling)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if RESULTS_NAME in filenames:
            found.append(osp.join(dirpath, RESULTS_NAME))
    return sorted(found)


def variant_of(path):
    """Trainer config name from the sweep layout .../<CFG>_<SHOTS>shots/seed<S>/results.json."""
    parent = osp.basename(osp.dirname(osp.dirname(osp.abspath(path))))
    match = re.fullmatch(r"(.+)_(\d+)shots", parent)
    return match.group(1) if match else None


def _as_int(data, key):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadResult(f"'{key}' is {value!r}, expected an integer")
    return int(value)


def load_result(path, metric):
    """One Record from a results.json, or BadResult with the reason."""
    try:
        with open(path, "r") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise BadResult(f"invalid JSON ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadResult(f"unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise BadResult(f"expected a JSON object, found {type(data).__name__}")
    # Both headline metrics are part of every finished run's results.json; a file without
    # one of them is incomplete whichever metric is tabulated.
    needed = ("method", "dataset", "backbone", "shots", "seed") + METRICS
    missing = [key for key in needed if key not in data]
    if missing:
        raise BadResult("incomplete: missing key(s) " + ", ".join(missing))
    for key in ("method", "dataset", "backbone"):
        if not isinstance(data[key], str) or not data[key]:
            raise BadResult(f"'{key}' is {data[key]!r}, expected a non-empty string")
    for key in METRICS:
        value = data[key]
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not 0 <= value <= 100):
            raise BadResult(f"'{key}' is {value!r}, expected a percentage in [0, 100]")
    return Record(data["method"], variant_of(path), data["dataset"], data["backbone"],
                  _as_int(data, "shots"), _as_int(data, "seed"), float(data[metric]), path)


def collect(root, metric, err=None):
    """Usable records under root; every skipped file is reported on err (default stderr)."""
    err = err or sys.stderr
    records, seen = [], {}
    for path in find_results(root):
        try:
            rec = load_result(path, metric)
        except BadResult as exc:
            print(f"warning: skipping {path}: {exc}", file=err)
            continue
        key = (rec.method, rec.variant, canonical_dataset(rec.dataset), rec.backbone,
               rec.shots, rec.seed)
        if key in seen:
            print(f"warning: skipping {path}: same method/dataset/backbone/shots/seed as "
                  f"{seen[key]}", file=err)
            continue
        seen[key] = path
        records.append(rec)
    return records


# ---------------------------------------------------------------- tables

def mean_std(values):
    """Mean and population std (ddof=0, as CoOp's parse_test_res.py / numpy.std)."""
    mu = sum(values) / len(values)
    return mu, math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def _row_avg(cells, columns):
    if not columns or any(cells.get(col) is None for col in columns):
        return None
    return sum(cells[col].mean for col in columns) / len(columns)


def reported_applies(method, shots, backbone, metric):
    return (metric == reported_numbers.METRIC
            and method in reported_numbers.REPORTED
            and same_backbone(backbone, reported_numbers.BACKBONE)
            and (shots == reported_numbers.SHOTS or method in reported_numbers.SHOT_INDEPENDENT))


def build_tables(records, metric="accuracy", reported=None):
    """Tables sorted by (shots, backbone). reported: None, 'measured' or 'all' methods."""
    groups = defaultdict(list)
    for rec in records:
        groups[(rec.shots, rec.backbone)].append(rec)
    tables = []
    for (shots, backbone) in sorted(groups, key=lambda k: (k[0], k[1])):
        recs = groups[(shots, backbone)]
        columns = _order({r.dataset for r in recs}, DATASET_ORDER, key=canonical_dataset)
        variants = defaultdict(set)
        values = defaultdict(lambda: defaultdict(list))
        for r in recs:
            variants[r.method].add(r.variant)
            values[(r.method, r.variant)][r.dataset].append(r.value)

        methods = set(variants)
        if reported == "all":
            methods |= {m for m in reported_numbers.REPORTED
                        if reported_applies(m, shots, backbone, metric)}
        rows = []
        for method in _order(methods, METHOD_ORDER):
            for variant in sorted(variants.get(method, ()), key=lambda v: (v is None, v or "")):
                label = method
                if len(variants[method]) > 1:
                    label = f"{method} [{variant or 'other'}]"
                cells = {}
                for col, vals in values[(method, variant)].items():
                    mu, sd = mean_std(vals)
                    cells[col] = Cell(mu, sd, len(vals))
                rows.append(Row(label, cells, _row_avg(cells, columns)))
            if reported and reported_applies(method, shots, backbone, metric):
                published = reported_numbers.REPORTED[method]
                cells = {}
                for col in columns:
                    value = published.get(canonical_dataset(col))
                    if value is not None:
                        cells[col] = Cell(value, None, None)
                if cells:
                    rows.append(Row(f"{method} (reported)", cells, _row_avg(cells, columns)))
        tables.append(Table(shots, backbone, columns, rows))
    return tables


# ---------------------------------------------------------------- rendering

def format_cell(cell, decimals, pm="+-"):
    if cell is None:
        return MISSING
    if cell.std is None:
        return f"{cell.mean:.{decimals}f}"
    return f"{cell.mean:.{decimals}f} {pm} {cell.std:.{decimals}f} ({cell.n})"


def format_avg(avg, decimals):
    return MISSING if avg is None else f"{avg:.{decimals}f}"


def _latex_escape(text):
    return re.sub(r"([_%&#$])", r"\\\1", str(text))


def table_title(table, metric):
    return (f"{table.shots} shots, {table.backbone}: {metric} (%), "
            "mean +- std over seeds (number of seeds)")


def render(tables, fmt="text", metric="accuracy", decimals=1, notes=()):
    """The tables as one string in the given format."""
    from tabulate import tabulate

    if fmt == "csv":
        columns = _order({c for t in tables for c in t.columns}, DATASET_ORDER,
                         key=canonical_dataset)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["shots", "backbone", "method"] + columns + ["Avg"])
        for t in tables:
            for row in t.rows:
                writer.writerow([t.shots, t.backbone, row.label]
                                + [format_cell(row.cells.get(c), decimals) for c in columns]
                                + [format_avg(row.avg, decimals)])
        return buf.getvalue()

    blocks = []
    for t in tables:
        if fmt == "latex":
            headers = ["Method"] + [_latex_escape(c) for c in t.columns] + ["Avg"]
            body = [[_latex_escape(row.label)]
                    + [format_cell(row.cells.get(c), decimals, pm=r"$\pm$") for c in t.columns]
                    + [format_avg(row.avg, decimals)] for row in t.rows]
            text = tabulate(body, headers, tablefmt="latex_raw", disable_numparse=True)
            blocks.append(f"% {_latex_escape(table_title(t, metric))}\n{text}")
            continue
        headers = ["Method"] + list(t.columns) + ["Avg"]
        body = [[row.label] + [format_cell(row.cells.get(c), decimals) for c in t.columns]
                + [format_avg(row.avg, decimals)] for row in t.rows]
        if fmt == "markdown":
            text = tabulate(body, headers, tablefmt="github", disable_numparse=True)
            blocks.append(f"### {table_title(t, metric)}\n\n{text}")
        else:
            text = tabulate(body, headers, tablefmt="simple", disable_numparse=True)
            blocks.append(f"{table_title(t, metric)}\n{text}")
    out = "\n\n".join(blocks) + "\n"
    if notes:
        prefix = "" if fmt == "text" else "> " if fmt == "markdown" else "% "
        out += "\n" + "".join(f"{prefix}{note}\n" for note in notes)
    return out


# ---------------------------------------------------------------- CLI

def build_parser():
    parser = argparse.ArgumentParser(
        description="Tables (trainers x datasets, one per shots/backbone) from results.json files.",
        epilog="Cells are mean +- population std (ddof=0, as CoOp's parse_test_res.py)\n"
               "over seeds, with the number of seeds in brackets; '-' marks a missing cell;\n"
               "Avg is given only for rows that have every dataset of their table. Broken\n"
               "results.json files are reported on stderr and skipped.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="output root to search for results.json (e.g. output)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--metric", choices=METRICS, default="accuracy")
    parser.add_argument("--reported", action="store_true",
                        help="add the published 16-shot ViT-B/16 accuracies (docs/methods.md) as "
                             "'<method> (reported)' rows under the measured methods")
    parser.add_argument("--reported-all", action="store_true",
                        help="like --reported, for every published method, measured or not")
    parser.add_argument("--decimals", type=int, default=1, help="decimals shown (default 1)")
    parser.add_argument("--out", metavar="FILE",
                        help="also write the table to FILE (atomically)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not osp.isdir(args.root):
        print(f"error: {args.root} is not a directory; pass the output root of your runs "
              "(e.g. output)", file=sys.stderr)
        return 2
    if args.decimals < 0:
        print("error: --decimals must be >= 0", file=sys.stderr)
        return 2
    records = collect(args.root, args.metric)
    if not records:
        print(f"error: no usable {RESULTS_NAME} under {args.root}", file=sys.stderr)
        return 1
    reported = "all" if args.reported_all else "measured" if args.reported else None
    tables = build_tables(records, args.metric, reported)
    notes = ()
    if reported:
        if not any(r.label.endswith("(reported)") for t in tables for r in t.rows):
            print(f"note: no reported numbers apply (they are {reported_numbers.METRIC}, "
                  f"{reported_numbers.SHOTS} shots, {reported_numbers.BACKBONE})",
                  file=sys.stderr)
        measured = {r.method for r in records}
        notes = reported_numbers.NOTES + tuple(
            note for method, note in reported_numbers.UNAVAILABLE.items() if method in measured)
    text = render(tables, args.format, args.metric, args.decimals, notes)
    sys.stdout.write(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
