"""Plot what a run learned: the PRM of a DVP run and each visual prompt, as PNGs in RUN_DIR/plots/.

    python scripts/plot_prm.py RUN_DIR [--out DIR] [--classes A B ...] [--max-classes 30] [--top 5]

Files (DVP runs with the PRM):
  prm_heatmap.png           the omega blocks, classes x descriptions (P(description | class)), beside the
                            prompt that scores each description
  prompt_contributions.png  per class, the PRM mass on the descriptions of each prompt (rows sum to 1)
  top_descriptions.png      per class, the descriptions with the largest weight, coloured by prompt
  top_descriptions.md       the same as text, with full sentences, counts and prompts (all classes)
Files (every run with visual prompts):
  prompt_<i>.png            what prompt i adds to an image at the backbone's size: padding shows
                            sigmoid(delta) on the frame around a grey image area; watermark shows
                            delta on the frame, rescaled so that grey is 0

The PRM comes from RUN_DIR/prm.pt (written at the end of training) and the prompts from the latest
checkpoint; with --load-epoch N both come from the checkpoint of epoch N. Only the run folder is read:
neither the dataset nor CLIP is needed. Large datasets: the PNGs show --classes, or the first
--max-classes classes.
"""
import argparse
import io
import json
import os
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from engine.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from runs import layout  # noqa: E402  (the files of a run folder)
from trainers.run_loading import check_run_dir, find_checkpoints, load_state, read_config, trainer_node, uses_prm  # noqa: E402

PRM_FILE = layout.PRM_FILE
TEXT_WIDTH = 70  # characters of a description shown in a PNG


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="OUTPUT_DIR of a training run")
    p.add_argument("--out", default="", help="output folder (default RUN_DIR/plots)")
    p.add_argument("--classes", nargs="+", default=None, help="class names to show (default: the first --max-classes)")
    p.add_argument("--max-classes", type=int, default=30, help="classes shown in the PNGs when --classes is not given")
    p.add_argument("--top", type=int, default=5, help="descriptions per class in top_descriptions (default 5)")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    return p


# ---- reading -----------------------------------------------------------------------------------------
def read_prm(run_dir, cfg, state=None):
    """The PRM of a run: prm.pt, or (``state`` given) the PRM held by a checkpoint, with prm.pt's class names.

    Returns a dict: weight, counts, prompt_of_slot (C, M'), contributions (C, v), classnames, texts, v.
    """
    from vr import PRM, TextTable

    path = os.path.join(run_dir, PRM_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: {cfg.TRAINER.NAME} runs write their PRM there at the end of training, so this run "
            f"did not finish. Finish it (train.py with the same --output-dir resumes it), then plot again.")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    prm = {"weight": saved["omega_blocks"].float(), "counts": saved["counts"],
           "prompt_of_slot": saved["prompt_of_slot"],
           "classnames": list(saved["classnames"]), "texts": [list(t) for t in saved["texts"]],
           "v": int(saved["contributions"].shape[1])}
    agg = PRM(*prm["weight"].shape, topk=1)
    agg.weight.copy_(prm["weight"])
    if state is not None:
        try:
            agg, table = PRM.from_state(state), TextTable.from_state(state)
        except ValueError as err:
            raise ValueError(f"{err} Plot without --load-epoch.") from None
        c = table.num_classes
        if c != len(prm["classnames"]):
            raise ValueError(f"The checkpoint has {c} classes, {PRM_FILE} has {len(prm['classnames'])}.")
        prm.update(weight=agg.text_weights(c, table.num_slots).float(), counts=agg.text_counts(),
                   prompt_of_slot=table.prompt_grid(), v=table.num_prompts,
                   texts=[table.texts_of_class(i) for i in range(c)])
    prm["contributions"] = agg.contributions(prm["prompt_of_slot"], prm["v"])
    return prm


def run_record(run_dir):
    """The run's record (run.json, trainers/run_record.py), or {} for runs of older code."""
    from trainers.run_record import RUN_FILE

    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def prompt_images(state, cfg, run_dir):
    """Per visual prompt held by the checkpoint, its panels [(H, W, 3) array in [0, 1], caption] ([] if none).

    The prompt kind draws itself (``pictures`` of its class in vr/prompts.py): padding shows what is added
    on the frame and the change from the start, watermark its delta with grey = 0.
    """
    from vr import prompt_from_node

    delta = state.get("prompts.delta")
    node = trainer_node(cfg)
    if delta is None or not node:
        return []
    v, size = delta.shape[0], delta.shape[-1]  # padding, watermark: delta is image-sized
    recorded = run_record(run_dir).get("prompt") or {}  # any kind: the run record's image size
    size = int(recorded.get("image_size", size))
    prompt = prompt_from_node(cfg.TRAINER[node], size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), v)
    prompt.load_state_dict({k[len("prompts."):]: t for k, t in state.items() if k.startswith("prompts.")})
    return [[(picture.clamp(0, 1).permute(1, 2, 0).numpy(), caption) for picture, caption in panels]
            for panels in prompt.pictures()]


# ---- selection ---------------------------------------------------------------------------------------
def select_classes(classnames, wanted=None, max_classes=30):
    """(indices, note): the named classes, or the first ``max_classes``."""
    if wanted:
        index = {c: i for i, c in enumerate(classnames)}
        missing = [c for c in wanted if c not in index]
        if missing:
            from engine.names import close_matches

            hints = {c: close_matches(c, classnames, n=1) for c in missing}
            hint = "; ".join(f'"{c}" (did you mean "{h[0]}"?)' if h else f'"{c}"' for c, h in hints.items())
            raise ValueError(f"--classes names classes the run does not have: {hint}. The run's classes are in "
                             f"prm_contributions.csv.")
        return [index[c] for c in wanted], ""
    if max_classes < 1:
        raise ValueError(f"--max-classes must be at least 1, got {max_classes}.")
    if len(classnames) <= max_classes:
        return list(range(len(classnames))), ""
    return list(range(max_classes)), f" (first {max_classes} of {len(classnames)} classes; see --classes)"


# ---- drawing -----------------------------------------------------------------------------------------
def prompt_colors(v):
    base = plt.get_cmap("tab10" if v <= 10 else "tab20")
    return [base(i % base.N) for i in range(v)]


def plain(text):
    """Text drawn literally (matplotlib would read $...$ as math)."""
    return str(text).replace("$", r"\$")


def shorten(text, width=TEXT_WIDTH):
    return plain(textwrap.shorten(str(text), width=width, placeholder="..."))


def save_figure(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # every figure uses the constrained layout
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_heatmap(prm, rows, note, path):
    weight = prm["weight"][rows].numpy()
    grid = prm["prompt_of_slot"][rows].numpy()
    names = [plain(prm["classnames"][i]) for i in rows]
    c, m = weight.shape
    v = prm["v"]
    font = max(5, min(10, int(400 / max(c, 1))))
    fig, axes = plt.subplots(1, 2, figsize=(2 * max(4.0, 0.12 * m + 2.5), max(3.0, 0.25 * c + 1.5)),
                             layout="constrained")
    im = axes[0].imshow(weight, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0)
    axes[0].set_title(f"PRM omega blocks: P(description | class){note}", fontsize=9)
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.02, label="weight")
    cmap = ListedColormap(prompt_colors(v))
    pim = axes[1].imshow(grid, aspect="auto", cmap=cmap, vmin=-0.5, vmax=v - 0.5, interpolation="nearest")
    axes[1].set_title("prompt that scores each description", fontsize=9)
    bar = fig.colorbar(pim, ax=axes[1], fraction=0.046, pad=0.02, ticks=range(v))
    bar.ax.set_yticklabels([f"prompt {i}" for i in range(v)])
    for ax in axes:
        ax.set_yticks(range(c))
        ax.set_yticklabels(names, fontsize=font)
        ax.set_xlabel("description slot j (column j of the class's block)")
        step = max(1, m // 20)
        ax.set_xticks(range(0, m, step))
    axes[1].set_yticklabels([])
    return save_figure(fig, path)


def plot_contributions(prm, rows, note, path):
    table = prm["contributions"][rows].numpy()
    names = [plain(prm["classnames"][i]) for i in rows]
    c, v = table.shape
    colors = prompt_colors(v)
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.28 * c + 1.2)), layout="constrained")
    left = np.zeros(c)
    y = np.arange(c)
    for i in range(v):
        ax.barh(y, table[:, i], left=left, color=colors[i], label=f"prompt {i}", edgecolor="white", linewidth=0.5)
        left += table[:, i]
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=max(5, min(10, int(400 / max(c, 1)))))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("PRM mass on the descriptions of each prompt (row sums to 1)")
    ax.set_title(f"Contribution of each visual prompt per class{note}", fontsize=10)
    fig.legend(loc="outside lower center", ncol=min(v, 6), fontsize=8)
    return save_figure(fig, path)


def top_descriptions(prm, rows, n):
    """{class index: [(slot, weight, count, prompt, text)]}: the n largest non-zero weights (ties: count)."""
    result = {}
    for ci in rows:
        w, cnt, grid = prm["weight"][ci], prm["counts"][ci], prm["prompt_of_slot"][ci]
        used = [j for j in range(len(w)) if float(w[j]) > 0]  # descriptions the class relies on at all
        order = sorted(used, key=lambda j: (-float(w[j]), -int(cnt[j]), j))[:n]
        result[ci] = [(j, float(w[j]), int(cnt[j]), int(grid[j]), prm["texts"][ci][j]) for j in order]
    return result


def plot_top_descriptions(prm, tops, note, path):
    """One axes (fast for many classes): per class a header row, then its top descriptions as bars."""
    colors = prompt_colors(prm["v"])
    ys, widths, bar_colors, labels, headers = [], [], [], [], []
    y = 0
    for ci, items in tops.items():
        headers.append((y, plain(prm["classnames"][ci])))
        y += 1
        for _, w, _, p, text in items:
            ys.append(y)
            widths.append(w)
            bar_colors.append(colors[p])
            labels.append(f"[p{p}] {shorten(text)}")
            y += 1
    fig, ax = plt.subplots(figsize=(9, 0.22 * y + 1.2), layout="constrained")
    ax.barh(ys, widths, color=bar_colors, height=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    for hy, name in headers:
        ax.text(0, hy, name, fontsize=9, fontweight="bold", va="center", ha="left")
        ax.axhline(hy - 0.5, color="0.85", linewidth=0.6)
    ax.set_ylim(y - 0.5, -0.5)
    ax.set_xlim(0, max(1e-9, max(widths, default=0.0)) * 1.05)
    ax.set_xlabel("PRM weight P(description | class); [pI] = scored by prompt I")
    ax.set_title(f"Top descriptions per class{note}", fontsize=10)
    return save_figure(fig, path)


def write_markdown(prm, tops, path, source):
    lines = [f"# Top descriptions per class (PRM weight = P(description | class); {source})", "",
             "Descriptions with weight 0 (never in the top-k of their class) are left out.", ""]
    for ci, items in tops.items():
        lines += [f"## {prm['classnames'][ci]}", "",
                  "| rank | weight | count | prompt | description |", "|---:|---:|---:|---:|---|"]
        for r, (_, w, cnt, p, text) in enumerate(items, 1):
            lines.append(f"| {r} | {w:.4f} | {cnt} | {p} | {str(text).replace('|', '/')} |")
        lines.append("")
    atomic_write_text(path, "\n".join(lines))
    return path


def plot_prompt(panels, path):
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.9), squeeze=False, layout="constrained")
    for ax, (image, caption) in zip(axes[0], panels, strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    return save_figure(fig, path)


# ---- the command -------------------------------------------------------------------------------------
def plot_run(run_dir, out=None, classes=None, max_classes=30, top=5, load_epoch=None, log=print):
    """Write the PNGs (and top_descriptions.md) of a run; return the written paths ([] if nothing to draw)."""
    run_dir = check_run_dir(run_dir)
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}.")
    cfg = read_config(run_dir)
    epoch, paths = find_checkpoints(run_dir, load_epoch)
    states = [load_state(p) for p in paths.values()]
    state = next((s for s in states if "prompts.delta" in s or "aggregation.weight" in s), states[0])
    has_prm = uses_prm(cfg)
    prm = read_prm(run_dir, cfg, state if load_epoch is not None else None) if has_prm else None
    rows, note = select_classes(prm["classnames"], classes, max_classes) if prm else ([], "")
    images = prompt_images(state, cfg, run_dir)
    if prm is None:
        what = "the visual prompts are" if images else "nothing is"
        log(f"Note: this {cfg.TRAINER.NAME} run has no PRM (only DVP_CSE / DVP_CLS runs with AGGREGATION prm "
            f"have one): {what} plotted.")
    if not images:
        log(f"Note: the checkpoint of {cfg.TRAINER.NAME} holds no visual prompt, so no prompt image is drawn.")
        if prm is None:
            return []
    out = os.path.abspath(out) if out else os.path.join(run_dir, layout.PLOTS_DIR)
    os.makedirs(out, exist_ok=True)
    written = []
    if prm is not None:
        source = f"{PRM_FILE}" if load_epoch is None else f"checkpoint of epoch {epoch}"
        written.append(plot_heatmap(prm, rows, note, os.path.join(out, "prm_heatmap.png")))
        written.append(plot_contributions(prm, rows, note, os.path.join(out, "prompt_contributions.png")))
        md_rows = rows if classes else list(range(len(prm["classnames"])))
        written.append(write_markdown(prm, top_descriptions(prm, md_rows, top),
                                      os.path.join(out, "top_descriptions.md"), source))
        written.append(plot_top_descriptions(prm, top_descriptions(prm, rows, top), note,
                                             os.path.join(out, "top_descriptions.png")))
    for i, panels in enumerate(images):
        written.append(plot_prompt(panels, os.path.join(out, f"prompt_{i}.png")))
    log(f"Checkpoint of epoch {epoch}; wrote {len(written)} file(s) to {out}:")
    for path in written:
        log(f"  {os.path.basename(path)}")
    return written


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        plot_run(args.run_dir, out=args.out or None, classes=args.classes, max_classes=args.max_classes,
                 top=args.top, load_epoch=args.load_epoch)
    except (FileNotFoundError, ValueError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"ERROR: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
