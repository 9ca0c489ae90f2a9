"""Few-shot curves: accuracy against shots, per dataset and averaged, one line per method.

    python scripts/plot_curves.py OUTPUT_ROOT [--out DIR] [--metric accuracy|macro_f1]

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
panel; its band is the std over the seeds that every dataset has of the per-seed averages.
"""
import argparse
import csv
import io
import os
import os.path as osp
import sys
from collections import defaultdict

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(1, REPO)
import make_table as mt  # noqa: E402

from engine.io import atomic_write_bytes, atomic_write_text  # noqa: E402

SHOTS = (1, 2, 4, 8, 16)
AVERAGE = "Average"


def curve_points(records):
    """{backbone: {panel: {line label: {shots: (mean, std, n)}}}} with an Average panel per backbone."""
    values = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(dict))))
    variants = defaultdict(set)
    for rec in records:
        if rec.classes != mt.ALL_CLASSES or mt.is_transfer_test(rec):
            continue
        variants[rec.method].add(rec.variant)
        values[rec.backbone][rec.dataset][(rec.method, rec.variant)][rec.shots][rec.seed] = rec.value

    def label(method, variant):
        return f"{method} [{variant or 'other'}]" if len(variants[method]) > 1 else method

    points = {}
    for backbone, by_dataset in values.items():
        panels = {}
        datasets = mt._order(by_dataset, mt.DATASET_ORDER, key=mt.canonical_dataset)
        for dataset in datasets:
            panels[dataset] = {label(*line): {k: summary(list(seeds.values()))
                                              for k, seeds in by_shots.items()}
                               for line, by_shots in by_dataset[dataset].items()}
        if len(datasets) > 1:
            panels[AVERAGE] = average_panel(by_dataset, datasets, label)
        points[backbone] = panels
    return points


def summary(values):
    mu, sd = mt.mean_std(values)
    return mu, sd, len(values)


def average_panel(by_dataset, datasets, label):
    lines = {line for d in datasets for line in by_dataset[d]}
    panel = {}
    for line in lines:
        shots = set.intersection(*[set(by_dataset[d].get(line, {})) for d in datasets])
        curve = {}
        for k in shots:
            seeds = [by_dataset[d][line][k] for d in datasets]
            mean = sum(mt.mean_std(list(s.values()))[0] for s in seeds) / len(datasets)
            common = set.intersection(*[set(s) for s in seeds])
            per_seed = [sum(s[seed] for s in seeds) / len(datasets) for seed in common]
            curve[k] = (mean, mt.mean_std(per_seed)[1] if per_seed else 0.0, len(common))
        if curve:
            panel[label(*line)] = curve
    return panel


def write_csv(points, path):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["backbone", "dataset", "method", "shots", "mean", "std", "seeds"])
    for backbone, panels in sorted(points.items()):
        for panel, lines in panels.items():
            for line in mt._order(lines, mt.METHOD_ORDER, key=lambda lab: lab.split(" [")[0]):
                for k, (mu, sd, n) in sorted(lines[line].items()):
                    writer.writerow([backbone, panel, line, k, f"{mu:.4f}", f"{sd:.4f}", n])
    atomic_write_text(path, buf.getvalue())
    return path


def plot_backbone(backbone, panels, metric, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(panels)
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False,
                             constrained_layout=True)
    methods = mt._order({line for lines in panels.values() for line in lines}, mt.METHOD_ORDER,
                        key=lambda lab: lab.split(" [")[0])
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    ticks = sorted(set(SHOTS) | {k for lines in panels.values() for c in lines.values() for k in c})
    for ax, name in zip(axes.flat, names):
        for method in methods:
            curve = panels[name].get(method)
            if not curve:
                continue
            xs = sorted(curve)
            mean = [curve[k][0] for k in xs]
            std = [curve[k][1] for k in xs]
            ax.plot(xs, mean, marker="o", label=method, color=colours[method])
            ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=colours[method], alpha=0.2, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(k) for k in ticks])
        ax.set_title(str(name).replace("$", r"\$"))
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(len(seen), 7))
    fig.suptitle(f"{backbone}: {metric} vs shots (mean +- std over seeds)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def file_tag(backbone):
    return "".join(c if c.isalnum() else "_" for c in backbone).strip("_").lower() or "backbone"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="output root to search for results.json (e.g. output)")
    parser.add_argument("--out", help="folder for the PNGs and curves.csv (default ROOT/curves)")
    parser.add_argument("--metric", choices=mt.METRICS, default="accuracy")
    args = parser.parse_args(argv)
    if not osp.isdir(args.root):
        print(f"ERROR: {args.root} is not a directory; pass the output root of your runs "
              "(e.g. output)", file=sys.stderr)
        return 2
    records = mt.collect(args.root, args.metric)
    test_selected = [r for r in records if r.test_selected]
    if test_selected:
        print(f"note: left out {len(test_selected)} test-selected result(s) (hyper-parameters chosen on "
              f"the test set: not comparable), e.g. {test_selected[0].path}", file=sys.stderr)
    points = curve_points([r for r in records if not r.test_selected])
    if not points:
        print(f"ERROR: no usable all-class {mt.RESULTS_NAME} under {args.root}", file=sys.stderr)
        return 1
    out = args.out or osp.join(args.root, "curves")
    os.makedirs(out, exist_ok=True)
    for backbone, panels in sorted(points.items()):
        path = plot_backbone(backbone, panels, args.metric,
                             osp.join(out, f"curves_{file_tag(backbone)}.png"))
        print(f"wrote {path}")
    print(f"wrote {write_csv(points, osp.join(out, 'curves.csv'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
