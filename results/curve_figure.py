"""The figure of plot_curves.py: one panel per dataset (and Average) of a backbone, a line per method with a
band of +- the std over seeds; a panel with nothing to draw says why in the panel (matplotlib, Agg)."""
import io
import textwrap

from . import names
from .curves import SHOTS


def plot_backbone(backbone, panels, metric, empty_notes=None):
    """PNG bytes of the panels of one backbone; ``empty_notes`` {panel: why it is empty}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    empty_notes = empty_notes or {}
    panel_names = list(panels)
    cols = min(4, len(panel_names))
    rows = (len(panel_names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False, constrained_layout=True)
    methods = names.ordered_methods({line for lines in panels.values() for line in lines})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    ticks = sorted(set(SHOTS) | {k for lines in panels.values() for c in lines.values() for k in c})
    for ax, name in zip(axes.flat, panel_names, strict=False):
        for method in methods:
            curve = panels[name].get(method)
            if not curve:
                continue
            xs = sorted(curve)
            mean = [curve[k][0] for k in xs]
            std = [curve[k][1] for k in xs]
            ax.plot(xs, mean, marker="o", label=method, color=colours[method])
            ax.fill_between(xs, [m - s for m, s in zip(mean, std, strict=False)],
                            [m + s for m, s in zip(mean, std, strict=False)],
                            color=colours[method], alpha=0.2, linewidth=0)
        if not panels[name] and name in empty_notes:
            ax.text(0.5, 0.5, textwrap.fill(f"empty: {empty_notes[name]}", 45).replace("$", r"\$"),
                    transform=ax.transAxes, ha="center", va="center", fontsize=7, wrap=True)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(k) for k in ticks])
        ax.set_title(str(name).replace("$", r"\$"))
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panel_names):]:
        ax.axis("off")
    seen = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=max(1, min(len(seen), 7)))
    fig.suptitle(f"{backbone}: {metric} vs shots (mean +- std over seeds)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
