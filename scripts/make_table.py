"""Result tables from the results.json files of a tree of runs (docs/tables.md).

One table per (shots, backbone): rows are trainers (results.json `method`), columns datasets as
configured (a base or new class subset is its own column; names and order are the loaders' display_name
and table_order), cells `mean +- std (n seeds)` over the seeds of ONE setting: seeds whose recorded config
(SEED and the keys that never change a run aside) or data identity differ are never averaged; the table
stops with an ERROR naming the keys, values and folders, or with --split-conflicts shows each setting as
its own row. `Avg` is the mean over the columns for rows that have every column. Broken results.json
files, untrained results and duplicates are reported on stderr and skipped; a test-selected result is
marked. ``--protocol base2new | xd | dg`` prints the protocol tables; ``--reported`` adds the published
rows of results/reported.py. The work is done by the results/ library; this is its command line.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from engine.io import atomic_write_text  # noqa: E402  (tables are shared: umask permissions)
from results import fewshot, identity, protocol_tables, records  # noqa: E402
from results.cells import test_selected_notes  # noqa: E402
from results.render import FORMATS, render  # noqa: E402
from runs import catalogue, protocol_layout  # noqa: E402

PROTOCOLS = ("fewshot", "base2new", "xd", "dg")


def build_parser():
    parser = argparse.ArgumentParser(
        description="Tables (trainers x datasets, one per shots/backbone) from results.json files.",
        epilog="Cells are mean +- population std (ddof=0, as CoOp's parse_test_res.py)\n"
               "over seeds, with the number of seeds in brackets; '-' marks a missing cell;\n"
               "Avg is given only for rows that have every dataset of their table. A cell\n"
               "averages only seeds with the same recorded settings and data identity.\n"
               "Broken results.json files are reported on stderr and skipped. See docs/tables.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="output root to search for results.json (e.g. output)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--metric", choices=records.METRICS, default="accuracy")
    parser.add_argument("--reported", action="store_true",
                        help="add the published accuracies (results/reported.py: 16-shot ViT-B/16 and RN50; with "
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
    parser.add_argument(records.SPLIT_FLAG, action="store_true",
                        help="seeds of one cell made with different settings (recorded config or data "
                             "identity) become separate rows labelled by the differing keys, e.g. "
                             "'AR [OPTIM.LR=1.0]'; without it such a table is an error naming them")
    return parser


def emit(text, out_file):
    sys.stdout.write(text)
    if out_file:
        atomic_write_text(out_file, text)


def main_protocol(args, recs, duplicates):
    """make_table.py --protocol base2new | xd | dg (results/protocol_tables.py)."""
    reported = "all" if args.reported_all else "measured" if args.reported else None
    if reported and args.protocol != "base2new":
        print(f"note: --reported applies to the few-shot and base2new tables; ignored with --protocol "
              f"{args.protocol}", file=sys.stderr)
    recs, split_notes = records.settle_settings(protocol_tables.used_records(args.protocol, recs),
                                                args.split_conflicts)
    if recs is None:
        return 1
    notes = identity.data_identity_note(recs) + split_notes
    try:
        text = protocol_tables.render_protocol(args.protocol, recs, args.format, args.metric, args.decimals,
                                               sys.stderr, args.root, reported, notes)
    except protocol_tables.MissingRuns as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    emit(text + "".join(f"\n{note}\n" for note in records.duplicate_notes(duplicates)), args.out)
    return 0


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
    recs = records.collect(args.root, args.metric, duplicates=duplicates)
    if not recs:
        print(f"error: no usable {records.RESULTS_NAME} under {args.root}", file=sys.stderr)
        return 1
    if args.protocol != "fewshot":
        return main_protocol(args, recs, duplicates)
    transfer = [r for r in recs if records.is_transfer_test(r)]
    if transfer:
        print(f"note: left out {len(transfer)} cross-dataset test result(s) under "
              f"{'/'.join(protocol_layout.XD_TEST)}/ (trained on {protocol_layout.XD_SOURCE}, not on the "
              "dataset they test); see --protocol xd / dg", file=sys.stderr)
        recs = [r for r in recs if r not in transfer]
        if not recs:
            print("error: only cross-dataset test results here; use --protocol xd or dg",
                  file=sys.stderr)
            return 1
    recs, split_notes = records.settle_settings(recs, args.split_conflicts)
    if recs is None:
        return 1
    reported = "all" if args.reported_all else "measured" if args.reported else None
    tables = fewshot.build_tables(recs, args.metric, reported)
    notes = fewshot.reported_notes(tables, recs, args.metric, sys.stderr) if reported else ()
    notes = (identity.data_identity_note(recs) + split_notes + test_selected_notes(fewshot.any_marked(tables))
             + tuple(notes) + records.duplicate_notes(duplicates))
    emit(render(tables, args.format, args.metric, args.decimals, notes), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
