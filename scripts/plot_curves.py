"""Few-shot curves: accuracy against shots, per dataset and averaged, one line per method.

    python scripts/plot_curves.py OUTPUT_ROOT [--out DIR] [--metric accuracy|macro_f1] [--split-conflicts]

Reads every results.json under OUTPUT_ROOT as make_table.py does (same dataset keys, same checks;
runs on a base or new class subset, scripts/xd.sh's cross-dataset tests and test-selected results, whose
hyper-parameters were chosen on the test images, are left out, the last with a note naming them) and
writes, into DIR (default OUTPUT_ROOT/curves):
  curves_<backbone>.png   one panel per dataset and (with two or more datasets) an "Average"
                          panel; a line per method (and trainer config when a method has several),
                          the mean over seeds with a band of +- the population std over seeds
  curves.csv              the plotted numbers: backbone, dataset, method, shots, mean, std, seeds
Whatever subset of methods, datasets and shots is present is drawn (the shots axis marks 1, 2, 4,
8, 16 and any other shot count found). The Average panel follows make_table's Avg: a point is the
mean of the dataset means, drawn only for a method and shot count that have every dataset of the
panel; its band is the std over the seeds that every dataset has of the per-seed averages. An empty
Average panel says why (in the figure and on stderr).
A point never averages seeds made with different settings (recorded config or data identity): that is
an ERROR naming the keys, values and folders, or with --split-conflicts one line per setting. The work
is done by the results/ library (docs/tables.md); this is its command line.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from engine.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from results import curves, records  # noqa: E402
from results.curve_figure import plot_backbone  # noqa: E402


def file_tag(backbone):
    return "".join(c if c.isalnum() else "_" for c in backbone).strip("_").lower() or "backbone"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="output root to search for results.json (e.g. output)")
    parser.add_argument("--out", help="folder for the PNGs and curves.csv (default ROOT/curves)")
    parser.add_argument("--metric", choices=records.METRICS, default="accuracy")
    parser.add_argument(records.SPLIT_FLAG, action="store_true",
                        help="seeds of one point made with different settings become separate lines labelled "
                             "by the differing keys; without it they are an error naming them")
    args = parser.parse_args(argv)
    if not osp.isdir(args.root):
        print(f"ERROR: {args.root} is not a directory; pass the output root of your runs "
              "(e.g. output)", file=sys.stderr)
        return 2
    recs = records.collect(args.root, args.metric)
    test_selected = [r for r in recs if r.test_selected]
    if test_selected:
        print(f"note: left out {len(test_selected)} test-selected result(s) (hyper-parameters chosen on "
              f"the test set: not comparable), e.g. {test_selected[0].path}", file=sys.stderr)
    recs, _ = records.settle_settings(curves.plotted([r for r in recs if not r.test_selected]),
                                      args.split_conflicts, row_of=curves.curve_row, cell_of=curves.curve_cell)
    if recs is None:
        return 1
    points, empty = curves.curve_points(recs)
    if not points:
        print(f"ERROR: no usable all-class {records.RESULTS_NAME} under {args.root}", file=sys.stderr)
        return 1
    out = args.out or osp.join(args.root, "curves")
    os.makedirs(out, exist_ok=True)
    for backbone, panels in sorted(points.items()):
        notes = {curves.AVERAGE: empty[backbone]} if backbone in empty else {}
        for why in notes.values():
            print(f"note: {backbone}: the {curves.AVERAGE} panel is empty: {why}", file=sys.stderr)
        path = osp.join(out, f"curves_{file_tag(backbone)}.png")
        atomic_write_bytes(path, plot_backbone(backbone, panels, args.metric, notes))
        print(f"wrote {path}")
    path = osp.join(out, "curves.csv")
    atomic_write_text(path, curves.curves_csv(points))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
