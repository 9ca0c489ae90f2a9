"""Few-shot curves: the points plot_curves.py draws, accuracy against shots per dataset and averaged.

A line is a method (and trainer config when a method has several, and setting when --split-conflicts split
one: a line never joins results of different settings, results/identity.py); a point is the mean over seeds
with the population std. The Average panel follows the tables' Avg: a point is the mean of the dataset
means, drawn only for a line and shot count that have every dataset of the panel; its band is the std over
the seeds every dataset has of the per-seed averages. When no line has that, the panel says why.
"""
import csv
import io
from collections import defaultdict

from . import names
from .cells import mean_std
from .fewshot import row_label
from .records import is_transfer_test

SHOTS = (1, 2, 4, 8, 16)
AVERAGE = "Average"


def curve_row(rec):
    """A line before any split by settings: backbone, method, trainer config."""
    return rec.backbone, rec.method, rec.variant


def curve_cell(rec):
    """A point of a line: dataset and shots."""
    return rec.dataset, rec.shots


def plotted(records):
    """The records curves show: all-class results that are not cross-dataset tests."""
    return [r for r in records if r.classes == names.ALL_CLASSES and not is_transfer_test(r)]


def curve_points(records):
    """({backbone: {panel: {line label: {shots: (mean, std, n)}}}}, {backbone: why its Average panel is
    empty}); every backbone with two or more datasets has an Average panel."""
    values = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(dict))))
    variants = defaultdict(set)
    for rec in plotted(records):
        variants[rec.method].add(rec.variant)
        values[rec.backbone][rec.dataset][(rec.method, rec.variant, rec.setting)][rec.shots][rec.seed] = rec.value

    def label(line):
        method, variant, setting = line
        return row_label(method, variant, variants[method], setting)

    points, empty = {}, {}
    for backbone, by_dataset in values.items():
        panels = {}
        datasets = names.ordered_datasets(by_dataset)
        for dataset in datasets:
            panels[dataset] = {label(line): {k: summary(list(seeds.values())) for k, seeds in by_shots.items()}
                               for line, by_shots in by_dataset[dataset].items()}
        if len(datasets) > 1:
            panels[AVERAGE] = average_panel(by_dataset, datasets, label)
            if not panels[AVERAGE]:
                empty[backbone] = why_no_average(by_dataset, datasets, label)
        points[backbone] = panels
    return points, empty


def summary(values):
    mu, sd = mean_std(values)
    return mu, sd, len(values)


def average_panel(by_dataset, datasets, label):
    lines = {line for d in datasets for line in by_dataset[d]}
    panel = {}
    for line in lines:
        shots = set.intersection(*[set(by_dataset[d].get(line, {})) for d in datasets])
        curve = {}
        for k in shots:
            seeds = [by_dataset[d][line][k] for d in datasets]
            mean = sum(mean_std(list(s.values()))[0] for s in seeds) / len(datasets)
            common = set.intersection(*[set(s) for s in seeds])
            per_seed = [sum(s[seed] for s in seeds) / len(datasets) for seed in common]
            curve[k] = (mean, mean_std(per_seed)[1] if per_seed else 0.0, len(common))
        if curve:
            panel[label(line)] = curve
    return panel


def why_no_average(by_dataset, datasets, label):
    """Why no line has a point in the Average panel: what each line lacks."""
    lines = sorted({line for d in datasets for line in by_dataset[d]}, key=lambda line: label(line))
    gaps = []
    for line in lines:
        lacking = [d for d in datasets if line not in by_dataset[d]]
        if lacking:
            gaps.append(f"{label(line)} lacks {', '.join(lacking)}")
        else:
            shots = {d: sorted(by_dataset[d][line]) for d in datasets}
            gaps.append(f"{label(line)} has no shot count common to every dataset ("
                        + "; ".join(f"{d}: {', '.join(map(str, s))}" for d, s in shots.items()) + ")")
    return (f"no method has a result for every dataset ({', '.join(datasets)}) at one shot count: "
            + "; ".join(gaps))


def curves_csv(points):
    """The plotted numbers: backbone, dataset, method, shots, mean, std, seeds."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["backbone", "dataset", "method", "shots", "mean", "std", "seeds"])
    for backbone, panels in sorted(points.items()):
        for panel, lines in panels.items():
            for line in names.ordered_methods(lines):
                for k, (mu, sd, n) in sorted(lines[line].items()):
                    writer.writerow([backbone, panel, line, k, f"{mu:.4f}", f"{sd:.4f}", n])
    return buf.getvalue()
