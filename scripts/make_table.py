"""Result tables from the results.json files of a tree of runs.

One table per (shots, backbone): rows are trainers (results.json `method`), columns datasets as
configured (:func:`dataset_key`: DATASET.NAME plus the keys that tell apart datasets sharing it, such
as the Digits shift or the ImageFolder folder; a base or new class subset is its own column; names and
order are the loaders' display_name and table_order, read from runs/datasets.json), cells
`mean +- std (n seeds)`; `Avg` is the mean over the columns for rows that have every column. Broken
results.json files are reported on stderr and skipped, so a table can be made while a sweep is still
running; two results for one cell are reported (the first path is used) and noted under the table.
An untrained result (``"untrained": true``: --eval-only of a learning method without --model-dir) is
never the method's number: it is skipped with a stderr line. A result whose hyper-parameters were
chosen on the test images (any nested ``"test_selected": true``) is tabulated with a mark
(:data:`MARK`) and the note :data:`TEST_SELECTED_NOTE` under the table.
``--protocol base2new | xd | dg`` prints the protocol tables instead (scripts/protocol_tables.py).
``--reported`` adds the published rows of scripts/reported.py that match a table's backbone and shots (with
``--protocol base2new``, the published base-to-new rows), each row's source in a note under the table.
"""
import argparse
import csv
import io
import math
import os
import os.path as osp
import re
import sys
from collections import defaultdict, namedtuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import protocols  # noqa: E402  (scripts/protocols.py: the protocols' run folders)
import reported as reported_numbers  # noqa: E402  (scripts/reported.py)
from engine.io import atomic_write_text  # noqa: E402  (tables are shared: umask permissions)
from engine.names import squash  # noqa: E402  (stdlib only)
from runs import catalogue, layout  # noqa: E402  (the registered datasets; the run-folder layout)

FORMATS = ("text", "markdown", "csv", "latex")
PROTOCOLS = ("fewshot", "base2new", "xd", "dg")
METRICS = ("accuracy", "macro_f1")
RESULTS_NAME = layout.RESULTS
MISSING = "-"

# Display order; names not listed follow, sorted.
METHOD_ORDER = ("ZeroshotCLIP", "VP", "AR", "AttrVR", "DVP_CSE", "DVP_CLS", "CoOp")

# Config keys (results.json config.DATASET) that tell apart datasets sharing one DATASET.NAME, with
# the value that leaves the name alone: the Digits shift and the ImageFolder folder.
DATASET_IDENTITY_KEYS = {"Digits": ("DIGITS_SHIFT", "none"), "ImageFolder": ("IMAGEFOLDER_DIR", "")}
ALL_CLASSES = "all"

# A cell (or average) that holds a test-selected result gets MARK (LATEX_MARK in LaTeX) and the note.
MARK, LATEX_MARK = "\u2020", r"$^\dagger$"
TEST_SELECTED_NOTE = f"{MARK} hyper-parameters chosen on the test set: not comparable"

Record = namedtuple("Record", "method variant dataset classes backbone shots seed value path test_selected",
                    defaults=(False,))
Cell = namedtuple("Cell", "mean std n test_selected", defaults=(False,))  # std, n: None when reported
Row = namedtuple("Row", "label cells avg")
Table = namedtuple("Table", "shots backbone columns rows")


class BadResult(ValueError):
    """A results.json that cannot be used; the message says why."""



def dataset_order():
    """DATASET.NAME of the registered datasets in table order (each loader's table_order; the
    catalogue runs/datasets.json or VR_DATASET_CATALOGUE); the others follow, sorted."""
    rows = catalogue.load_datasets().values()
    return tuple(row.name for row in sorted((r for r in rows if r.table_order is not None),
                                            key=lambda r: r.table_order))


def __getattr__(name):
    if name == "DATASET_ORDER":  # for the other scripts: read when asked (plugins' catalogue included)
        return dataset_order()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def canonical_dataset(name):
    """DATASET.NAME for a dataset spelled as in results.json, its table name, config name or an alias."""
    key = squash(name)
    for row in catalogue.load_datasets().values():
        if key in {squash(n) for n in (row.name, row.display_name, row.config_name, *row.aliases)}:
            return row.name
    return name


def display_name(name):
    """A dataset's column name in the tables (its loader's display_name; else the name itself)."""
    row = catalogue.load_datasets().get(name)
    return row.display_name if row else name


def dataset_key(data):
    """The dataset a run used, as configured: DATASET.NAME, plus the Digits shift ("Digits (tinted)")
    or the ImageFolder folder ("ImageFolder (/data/pets)", resolved against DATASET.ROOT), from the
    config that results.json records. Every grouping of results goes through this key."""
    name = data["dataset"]
    dataset_cfg = _dataset_cfg(data)
    key, default = DATASET_IDENTITY_KEYS.get(name, (None, None))
    value = dataset_cfg.get(key, default) if key else default
    name = display_name(name)
    if value in (None, default):
        return name
    if name == "ImageFolder":
        value = osp.normpath(osp.join(osp.expanduser(str(dataset_cfg.get("ROOT") or "")),
                                      osp.expanduser(str(value))))
    return f"{name} ({value})"


def classes_of(data):
    """The class subset a run evaluated (DATASET.SUBSAMPLE_CLASSES: all, base or new)."""
    return str(_dataset_cfg(data).get("SUBSAMPLE_CLASSES") or ALL_CLASSES).lower()


def _dataset_cfg(data):
    config = data.get("config")
    dataset_cfg = config.get("DATASET") if isinstance(config, dict) else None
    return dataset_cfg if isinstance(dataset_cfg, dict) else {}


def column_of(rec):
    """The few-shot table's column of a record: its dataset key, with the class subset unless all."""
    return rec.dataset if rec.classes == ALL_CLASSES else f"{rec.dataset} [{rec.classes}]"


def same_backbone(a, b):
    """ViT-B/16, ViT-B-16 and vit_b16 name the same backbone."""
    return squash(a) == squash(b)


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
    """Trainer config name from the run layout .../<CFG>_<SHOTS>shots/seed<S>/results.json."""
    run = layout.parse_run_dir(osp.abspath(path))
    return run.cfg if run else None


def _as_int(data, key):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadResult(f"'{key}' is {value!r}, expected an integer")
    return int(value)


def load_result(path, metric):
    """One Record from a results.json, or BadResult with the reason."""
    data, why = layout.read_results_file(path)
    if data is None:
        raise BadResult(why)
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
    if data.get("untrained") is True:
        raise BadResult('untrained ("untrained": true: --eval-only without --model-dir evaluated the '
                        "initial parameters), not the method's result; evaluate the trained run with "
                        "--model-dir")
    return Record(data["method"], variant_of(path), dataset_key(data), classes_of(data),
                  data["backbone"], _as_int(data, "shots"), _as_int(data, "seed"),
                  float(data[metric]), path, is_test_selected(data))


def is_test_selected(data):
    """Whether any mapping inside a results.json says ``"test_selected": true`` (a feature baseline
    whose hyper-parameters were chosen on the test images: trainers/features.py hp_record)."""
    if isinstance(data, dict):
        return data.get("test_selected") is True or any(is_test_selected(v) for v in data.values())
    if isinstance(data, list):
        return any(is_test_selected(v) for v in data)
    return False


def cell_of(recs):
    """The mean +- std cell of some records (one per seed), marked when any is test-selected."""
    mu, sd = mean_std([r.value for r in recs])
    return Cell(mu, sd, len(recs), any(r.test_selected for r in recs))


def marked(text, flag, mark=MARK):
    return f"{text} {mark}" if flag else text


def test_selected_notes(flagged):
    """The note under a table that shows a test-selected result (flagged: any such cell)."""
    return (TEST_SELECTED_NOTE,) if flagged else ()


def is_transfer_test(rec):
    """A cross-dataset test of scripts/xd.sh: a model trained on ImageNet, tested on rec.dataset."""
    return protocols.protocol_dir_of(rec.path) == protocols.XD_TEST


def cell_key(rec):
    """What makes two results the same table cell and seed."""
    return (rec.method, rec.variant, canonical_dataset(rec.dataset), rec.classes, rec.backbone,
            rec.shots, rec.seed, is_transfer_test(rec))


def collect(root, metric, err=None, duplicates=None):
    """Usable records under root; every skipped file is reported on err (default stderr).

    Two results for one cell and seed (:func:`cell_key`) are reported with both paths; the first
    (sorted) path is used and the other is appended to ``duplicates`` (a list) when given.
    """
    err = err or sys.stderr
    records, seen = [], {}
    for path in find_results(root):
        try:
            rec = load_result(path, metric)
        except BadResult as exc:
            print(f"warning: skipping {path}: {exc}", file=err)
            continue
        key = cell_key(rec)
        if key in seen:
            print(f"warning: duplicate result: {path} is the same method/dataset/classes/backbone/"
                  f"shots/seed as {seen[key]} ({rec.method}, {column_of(rec)}, {rec.shots} shots, "
                  f"seed {rec.seed}); using {seen[key]}", file=err)
            if duplicates is not None:
                duplicates.append((path, seen[key]))
            continue
        seen[key] = path
        records.append(rec)
    return records


def duplicate_notes(duplicates):
    """The note printed under a table when results were left out as duplicates."""
    if not duplicates:
        return ()
    note = (f"{len(duplicates)} duplicate result(s) left out (same cell and seed as another "
            f"results.json; listed on stderr), e.g. {duplicates[0][0]}")
    return (note,)


# ---------------------------------------------------------------- tables

def mean_std(values):
    """Mean and population std (ddof=0, as CoOp's parse_test_res.py / numpy.std)."""
    mu = sum(values) / len(values)
    return mu, math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def _row_avg(cells, columns):
    if not columns or any(cells.get(col) is None for col in columns):
        return None
    return sum(cells[col].mean for col in columns) / len(columns)


def _avg_marked(row, columns):
    return row.avg is not None and any(row.cells[col].test_selected for col in columns)


def reported_protocol(method, shots, backbone, metric):
    """The (backbone, shots) key of scripts/reported.py's REPORTED_BY_PROTOCOL whose published row of
    ``method`` belongs in the table of (shots, backbone); None when none does. Zero-shot numbers
    (SHOT_INDEPENDENT) belong in every shots' table of their backbone."""
    if metric != reported_numbers.METRIC:
        return None
    for key, rows in reported_numbers.REPORTED_BY_PROTOCOL.items():
        published_backbone, published_shots = key
        if (method in rows and same_backbone(backbone, published_backbone)
                and (shots == published_shots or method in reported_numbers.SHOT_INDEPENDENT)):
            return key
    return None


def reported_row(method, shots, backbone, metric, columns):
    """The '<method> (reported)' row for these columns (test-selected rows marked), or None."""
    key = reported_protocol(method, shots, backbone, metric)
    if key is None:
        return None
    published = reported_numbers.REPORTED_BY_PROTOCOL[key][method]
    selected = reported_numbers.TEST_SELECTED.get(key, {}).get(method, ())
    cells = {col: Cell(published[canonical_dataset(col)], None, None,
                       selected == reported_numbers.EVERY_DATASET or canonical_dataset(col) in selected)
             for col in columns if canonical_dataset(col) in published}
    return Row(f"{method} (reported)", cells, _row_avg(cells, columns)) if cells else None


def reported_source_note(method, shots, backbone, metric):
    """The line under the table that says where a reported row comes from."""
    key = reported_protocol(method, shots, backbone, metric)
    published_backbone, published_shots = key
    return (f"{method} (reported, {published_backbone}, {published_shots} shots): "
            f"{reported_numbers.SOURCES[key][method]}")


def build_tables(records, metric="accuracy", reported=None):
    """Tables sorted by (shots, backbone). reported: None, 'measured' or 'all' methods."""
    groups = defaultdict(list)
    for rec in records:
        groups[(rec.shots, rec.backbone)].append(rec)
    tables = []
    for (shots, backbone) in sorted(groups, key=lambda k: (k[0], k[1])):
        recs = groups[(shots, backbone)]
        columns = _order({column_of(r) for r in recs}, dataset_order(), key=canonical_dataset)
        variants = defaultdict(set)
        values = defaultdict(lambda: defaultdict(list))
        for r in recs:
            variants[r.method].add(r.variant)
            values[(r.method, r.variant)][column_of(r)].append(r)

        methods = set(variants)
        if reported == "all":
            methods |= {m for rows in reported_numbers.REPORTED_BY_PROTOCOL.values() for m in rows
                        if reported_protocol(m, shots, backbone, metric)}
        rows = []
        for method in _order(methods, METHOD_ORDER):
            for variant in sorted(variants.get(method, ()), key=lambda v: (v is None, v or "")):
                label = method
                if len(variants[method]) > 1:
                    label = f"{method} [{variant or 'other'}]"
                cells = {}
                for col, recs_of_cell in values[(method, variant)].items():
                    cells[col] = cell_of(recs_of_cell)
                rows.append(Row(label, cells, _row_avg(cells, columns)))
            published = reported_row(method, shots, backbone, metric, columns) if reported else None
            if published:
                rows.append(published)
        tables.append(Table(shots, backbone, columns, rows))
    return tables


# ---------------------------------------------------------------- rendering

def format_cell(cell, decimals, pm="+-", mark=MARK):
    if cell is None:
        return MISSING
    if cell.std is None:
        return marked(f"{cell.mean:.{decimals}f}", cell.test_selected, mark)
    return marked(f"{cell.mean:.{decimals}f} {pm} {cell.std:.{decimals}f} ({cell.n})", cell.test_selected, mark)


def format_avg(avg, decimals, flag=False, mark=MARK):
    return MISSING if avg is None else marked(f"{avg:.{decimals}f}", flag, mark)


def _latex_escape(text):
    return re.sub(r"([_%&#$])", r"\\\1", str(text))


def table_title(table, metric):
    return (f"{table.shots} shots, {table.backbone}: {metric} (%), "
            "mean +- std over seeds (number of seeds)")


def render(tables, fmt="text", metric="accuracy", decimals=1, notes=()):
    """The tables as one string in the given format."""
    from tabulate import tabulate

    if fmt == "csv":
        columns = _order({c for t in tables for c in t.columns}, dataset_order(),
                         key=canonical_dataset)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["shots", "backbone", "method"] + columns + ["Avg"])
        for t in tables:
            for row in t.rows:
                writer.writerow([t.shots, t.backbone, row.label]
                                + [format_cell(row.cells.get(c), decimals) for c in columns]
                                + [format_avg(row.avg, decimals, _avg_marked(row, t.columns))])
        return buf.getvalue() + notes_text(notes, fmt)

    blocks = []
    for t in tables:
        if fmt == "latex":
            headers = ["Method"] + [_latex_escape(c) for c in t.columns] + ["Avg"]
            body = [[_latex_escape(row.label)]
                    + [format_cell(row.cells.get(c), decimals, pm=r"$\pm$", mark=LATEX_MARK)
                       for c in t.columns]
                    + [format_avg(row.avg, decimals, _avg_marked(row, t.columns), LATEX_MARK)]
                    for row in t.rows]
            text = tabulate(body, headers, tablefmt="latex_raw", disable_numparse=True)
            blocks.append(f"% {_latex_escape(table_title(t, metric))}\n{text}")
            continue
        headers = ["Method"] + list(t.columns) + ["Avg"]
        body = [[row.label] + [format_cell(row.cells.get(c), decimals) for c in t.columns]
                + [format_avg(row.avg, decimals, _avg_marked(row, t.columns))] for row in t.rows]
        if fmt == "markdown":
            text = tabulate(body, headers, tablefmt="github", disable_numparse=True)
            blocks.append(f"### {table_title(t, metric)}\n\n{text}")
        else:
            text = tabulate(body, headers, tablefmt="simple", disable_numparse=True)
            blocks.append(f"{table_title(t, metric)}\n{text}")
    return "\n\n".join(blocks) + "\n" + notes_text(notes, fmt)


def notes_text(notes, fmt):
    """Notes under the tables, as the format writes them (a LaTeX note is a comment). CSV keeps its
    rows machine-readable: only the mark's meaning follows them, as a '#' line."""
    if fmt == "csv":
        return "".join(f"# {note}\n" for note in notes if note == TEST_SELECTED_NOTE)
    if not notes:
        return ""
    prefix = "" if fmt == "text" else "> " if fmt == "markdown" else "% "
    return "\n" + "".join(f"{prefix}{note}\n" for note in notes)


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
                        help="add the published accuracies (scripts/reported.py: 16-shot ViT-B/16 and RN50; with "
                             "--protocol base2new the base-to-new averages) as '<method> (reported)' rows "
                             "under the measured methods, each with its source")
    parser.add_argument("--reported-all", action="store_true",
                        help="like --reported, for every published method, measured or not")
    parser.add_argument("--decimals", type=int, default=1, help="decimals shown (default 1)")
    parser.add_argument("--out", metavar="FILE",
                        help="also write the table to FILE (atomically)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="fewshot",
                        help="fewshot: trainers x datasets per shots (default); base2new: base, new "
                             "and HM per dataset (runs of scripts/base2new.sh); xd / dg: source "
                             "ImageNet and each cross-dataset / ImageNet-variant target (runs of "
                             "scripts/xd.sh, e.g. make_table.py output/xd --protocol xd)")
    return parser


def emit(text, out_file):
    sys.stdout.write(text)
    if out_file:
        atomic_write_text(out_file, text)


def main_protocol(args, records, duplicates):
    """make_table.py --protocol base2new | xd | dg (scripts/protocol_tables.py)."""
    import protocol_tables  # scripts/protocol_tables.py

    reported = "all" if args.reported_all else "measured" if args.reported else None
    if reported and args.protocol != "base2new":
        print(f"note: --reported applies to the few-shot and base2new tables; ignored with --protocol "
              f"{args.protocol}", file=sys.stderr)
    try:
        text = protocol_tables.render_protocol(args.protocol, records, args.format, args.metric,
                                               args.decimals, sys.stderr, args.root, reported)
    except protocol_tables.MissingRuns as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    emit(text + "".join(f"\n{note}\n" for note in duplicate_notes(duplicates)), args.out)
    return 0


def reported_notes(tables, records, metric):
    """The notes of --reported: each printed reported row's source, and why a measured method has none."""
    suffix = " (reported)"
    shown = [(r.label[:-len(suffix)], t.shots, t.backbone) for t in tables for r in t.rows
             if r.label.endswith(suffix)]
    if not shown:
        protocols_list = ", ".join(f"{b} {s} shots" for b, s in reported_numbers.REPORTED_BY_PROTOCOL)
        print(f"note: no reported numbers apply (they are {reported_numbers.METRIC}, {protocols_list})",
              file=sys.stderr)
    sources = dict.fromkeys(reported_source_note(m, s, b, metric) for m, s, b in shown)
    with_row = {m for m, _, _ in shown}
    measured = {r.method for r in records}
    return reported_numbers.NOTES + tuple(sources) + tuple(
        note for method, note in reported_numbers.UNAVAILABLE.items() if method in measured - with_row)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not osp.isdir(args.root):
        print(f"error: {args.root} is not a directory; pass the output root of your runs "
              "(e.g. output)", file=sys.stderr)
        return 2
    if args.decimals < 0:
        print("error: --decimals must be >= 0", file=sys.stderr)
        return 2
    try:
        catalogue.load_datasets()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    duplicates = []
    records = collect(args.root, args.metric, duplicates=duplicates)
    if not records:
        print(f"error: no usable {RESULTS_NAME} under {args.root}", file=sys.stderr)
        return 1
    if args.protocol != "fewshot":
        return main_protocol(args, records, duplicates)
    transfer = [r for r in records if is_transfer_test(r)]
    if transfer:
        print(f"note: left out {len(transfer)} cross-dataset test result(s) under "
              f"{'/'.join(protocols.XD_TEST)}/ (trained on {protocols.XD_SOURCE}, not on the dataset "
              "they test); see --protocol xd / dg", file=sys.stderr)
        records = [r for r in records if r not in transfer]
        if not records:
            print("error: only cross-dataset test results here; use --protocol xd or dg",
                  file=sys.stderr)
            return 1
    reported = "all" if args.reported_all else "measured" if args.reported else None
    tables = build_tables(records, args.metric, reported)
    notes = ()
    if reported:
        notes = reported_notes(tables, records, args.metric)
    flagged = any(c.test_selected for t in tables for r in t.rows for c in r.cells.values())
    notes = test_selected_notes(flagged) + tuple(notes) + duplicate_notes(duplicates)
    emit(render(tables, args.format, args.metric, args.decimals, notes), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
