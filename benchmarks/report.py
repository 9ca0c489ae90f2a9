"""Markdown tables from the json files of benchmarks/bench.py (for benchmarks/README.md).

    python benchmarks/report.py output/bench/bench_cpu.json [more.json ...]
"""
import argparse
import json

from tabulate import tabulate


def _machine(m):
    text = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('ram_gb', '?')} GB RAM"
    if m.get("gpu"):
        text = f"{m['gpu']} ({m.get('gpu_mem_gb', '?')} GB); host: {text}"
    return f"{text}; torch {m.get('torch', '?')}, python {m.get('python', '?')}, {m.get('threads', '?')} threads"


def _table(rows, columns):
    return tabulate([[fmt(r) for _, fmt in columns] for r in rows], headers=[h for h, _ in columns],
                    tablefmt="github")


def _mem(r):
    return f"{r['peak_mb']:.0f}"


def throughput(rows):
    return _table(rows, [("backbone", lambda r: r["backbone"]), ("trainer", lambda r: r["trainer"]),
                         ("prompts", lambda r: r["prompts"]), ("batch", lambda r: r["batch"]),
                         ("precision", lambda r: r["precision"]),
                         ("train img/s", lambda r: f"{r['train_img_s']:.1f}"),
                         ("eval img/s", lambda r: f"{r['eval_img_s']:.1f}"), ("peak MB", _mem)])


def dvp(rows):
    return _table(rows, [("backbone", lambda r: r["backbone"]), ("batch", lambda r: r["batch"]),
                         ("v", lambda r: r["v"]), ("encoder calls", lambda r: r["mode"]),
                         ("step ms", lambda r: f"{r['step_s'] * 1000:.1f}"),
                         ("train img/s", lambda r: f"{r['train_img_s']:.1f}"), ("peak MB", _mem)])


def precision(rows):
    return _table(rows, [("backbone", lambda r: r["backbone"]), ("batch", lambda r: r["batch"]),
                         ("precision", lambda r: r["precision"]),
                         ("train img/s", lambda r: f"{r['train_img_s']:.1f}"), ("peak MB", _mem)])


def cache(rows):
    return _table(rows, [("loader workers", lambda r: r["workers"]), ("CACHE_TRAIN", lambda r: r["cache"]),
                         ("img/s", lambda r: f"{r['img_s']:.1f}"), ("epoch s", lambda r: f"{r['epoch_s']:.2f}"),
                         ("cache MB", lambda r: f"{r['cache_mb']:.1f}")])


def e2e(part):
    head = (f"{part['epochs']} epochs, {part['backbone']}, {part['classes']} classes, {part['train_images']} "
            f"training / {part['test_images']} test images, {part['workers']} loader workers\n\n")
    return head + _table(part["runs"], [("run", lambda r: r["run"]), ("wall s", lambda r: f"{r['wall_s']:.1f}"),
                                        ("CPU s", lambda r: f"{r['cpu_s']:.1f}"),
                                        ("speed-up (wall)", lambda r: f"{r['speedup']:.2f}x"),
                                        ("speed-up (CPU)", lambda r: f"{r['cpu_speedup']:.2f}x")])


def memory(rows):
    return _table(rows, [("CACHE_TRAIN", lambda r: r["cache"]), ("max RSS MB", lambda r: f"{r['max_rss_mb']:.0f}"),
                         ("cache MB", lambda r: f"{r['cache_mb']:.0f}"), ("classes", lambda r: r["classes"]),
                         ("training images", lambda r: r["train_images"]), ("texts", lambda r: r["texts"])])


def split(rows):
    return _table(rows, [("backbone", lambda r: r["backbone"]), ("trainer", lambda r: r["trainer"]),
                         ("prompts", lambda r: r["prompts"]), ("batch", lambda r: r["batch"]),
                         ("first-layer split", lambda r: r["first_layer_split"]),
                         ("step ms (min wall)", lambda r: f"{r['step_s'] * 1000:.0f}"),
                         ("step CPU ms (min)", lambda r: f"{r['step_cpu_s'] * 1000:.0f}"),
                         ("speed-up (wall)", lambda r: f"{r['speedup']:.2f}x"),
                         ("speed-up (CPU)", lambda r: f"{r['cpu_speedup']:.2f}x"),
                         ("train img/s", lambda r: f"{r['train_img_s']:.1f}"), ("peak MB", _mem)])


def profile(rows):
    out = []
    for r in rows:
        out.append(f"first-layer split {r['first_layer_split']}: {r['aten_self_cpu_ms']:.0f} ms of operator self "
                   f"CPU time; first layer (convolution forward + backward) {r['first_layer_share']:.0%}, "
                   f"element-wise operators {r['elementwise_share']:.0%}\n")
        out.append(_table(r["top_ops"], [("operator", lambda o: o["op"]), ("calls", lambda o: o["calls"]),
                                         ("self CPU ms", lambda o: f"{o['self_cpu_ms']:.1f}"),
                                         ("share", lambda o: f"{o['share']:.1%}")]) + "\n")
    return "\n".join(out)


def _opt(r, key, fmt):
    return fmt.format(r[key]) if r.get(key) is not None else "-"


def trainers(rows):
    return _table(rows, [("trainer", lambda r: r["trainer"]), ("kind", lambda r: r["kind"]),
                         ("batch", lambda r: r["batch"]), ("train images", lambda r: r["train_images"]),
                         ("build s", lambda r: f"{r['build_s']:.1f}"),
                         ("prepare / fit s", lambda r: _opt(r, "prepare_s", "{:.1f}")),
                         ("train img/s", lambda r: _opt(r, "train_img_s", "{:.1f}")),
                         ("eval img/s", lambda r: f"{r['eval_img_s']:.1f}"),
                         ("trainable", lambda r: _opt(r, "trainable_params", "{:,}"))])


PARTS = {"throughput": throughput, "dvp": dvp, "precision": precision, "cache": cache, "e2e": e2e,
         "memory": memory, "split": split, "profile": profile, "trainers": trainers}


def render(results):
    out = [f"Machine: {_machine(results['machine'])}. Device: {results['device']}; "
           f"load average at start {results['load_average_at_start'][0]:.2f}."]
    for name, fn in PARTS.items():
        if name in results:
            out += ["", f"**{name}**", "", fn(results[name])]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="json files written by benchmarks/bench.py")
    args = ap.parse_args(argv)
    blocks = []
    for path in args.files:
        with open(path) as f:
            blocks.append(render(json.load(f)))
    print("\n\n".join(blocks))


if __name__ == "__main__":
    main()
