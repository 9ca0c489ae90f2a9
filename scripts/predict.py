"""Apply a trained run to new images: the top classes with their probabilities, and for DVP why.

    python scripts/predict.py RUN_DIR IMAGE [IMAGE ...] [--topk 5] [--load-epoch N] [--device auto]

RUN_DIR is the OUTPUT_DIR of a training run (train.py). The model is rebuilt from RUN_DIR/config.yaml
and its latest checkpoint (or --load-epoch N); the dataset recorded in the config must still exist
(it gives the class names and the test transform; --root points at a moved dataset). Images go through
the run's own test transform.

Where the model can say why (its ``explain(images, labels, classnames=..., top=N)`` method: one JSON-able
record per image, for its predicted class), the script prints it. VR models (vr/model.py) explain a class
logit that is a weighted sum of text logits (DVP's PRM, the label maps of ILM-VP, BLM and BLM+, the mean
over descriptions): how much of it each visual prompt contributes (its weight mass, which marks the prompt
that weighed most, and its part of the logit; with several prompts) and the N texts with the largest
weight x logit (texts of weight 0 do not count). Tip-Adapter / Tip-Adapter-F list the N cache neighbours
(the training images whose keys have the highest affinity with the image, their labels, affinity and part
of the predicted class's logit). N: --descriptions (or --neighbours), default 5.
--json prints the same as JSON. An image that cannot be read (missing, truncated, a float TIFF) gets one
ERROR line (and an "error" record) and is left out; the others are predicted; the exit status is then 1.
"""
import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

from trainers.run_loading import DEVICES, check_images, check_run_dir, load_run  # noqa: E402

BATCH = 32


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="OUTPUT_DIR of a training run (holds config.yaml and the checkpoints)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--topk", type=int, default=5, help="classes to print per image (default 5)")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--root", default="", help="dataset root, when it moved since training")
    p.add_argument("--descriptions", "--neighbours", dest="descriptions", type=int, default=5,
                   help="texts (VR methods) or cache neighbours (Tip-Adapter) behind the predicted class to print "
                        "(default 5)")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.add_argument("--verbose", action="store_true", help="show what rebuilding the model prints")
    return p


def predict(run, images, topk=5, n_descriptions=5):
    """One record per image: top classes (with probabilities) and, where the model can say why (its
    ``explain`` method: weighted text sums, cache neighbours), the explanation of its top class."""
    model = run.model
    explain = getattr(model, "explain", None)
    k = max(1, min(int(topk), len(run.classnames)))
    records = []
    for start in range(0, len(images), BATCH):
        batch, paths, failed = read_batch(run, images[start:start + BATCH])
        records += failed
        if not paths:
            continue
        with torch.no_grad():
            logits = run.class_logits(batch)
        probs = torch.softmax(logits.float(), dim=1)
        top = torch.topk(probs, k, dim=1)
        why = (explain(batch, top.indices[:, 0].tolist(), classnames=run.classnames, top=n_descriptions)
               if explain else [None] * len(paths))
        for b, path in enumerate(paths):
            rec = {"image": path, "top": [{"class": run.classnames[int(i)], "label": int(i), "probability": float(p)}
                                          for p, i in zip(top.values[b], top.indices[b], strict=False)]}
            if why[b] is not None:
                rec["explanation"] = {"class": run.classnames[int(top.indices[b, 0])], **why[b]}
            records.append(rec)
    return records


def read_batch(run, paths):
    """(batch of the images that decode, their paths, {"image", "error"} records of those that do not): a
    truncated JPEG or a float TIFF is reported for itself and the other images are still predicted."""
    tensors, kept, failed = [], [], []
    for path in paths:
        try:
            tensors.append(run.images_to_batch([path]))
            kept.append(path)
        except (OSError, ValueError) as err:  # engine.imageio.ImageReadError names the file and the fix
            failed.append({"image": path, "error": str(err)})
    return (torch.cat(tensors) if tensors else None), kept, failed


def checked_images(paths):
    """(paths that exist and open as images, error records of the others), in the given order."""
    good, failed = [], []
    for path in paths:
        try:
            good += check_images([path])
        except (FileNotFoundError, ValueError) as err:
            failed.append({"image": path, "error": str(err)})
    return good, failed


def format_record(rec):
    if "error" in rec:
        return f"== {rec['image']}\n  not predicted: {rec['error']}"
    width = max(len(t["class"]) for t in rec["top"])
    lines = [f"== {rec['image']}"]
    for r, t in enumerate(rec["top"], 1):
        lines.append(f"  {r:>2}. {t['class']:<{width}}  {100.0 * t['probability']:6.2f}%")
    ex = rec.get("explanation")
    if ex and ex.get("kind") == "cache_neighbours":
        lines += format_cache_neighbours(ex)
    elif ex:
        several = len(ex["prompts"]) > 1
        sources = ex.get("sources", "descriptions")  # a classifier backbone: its source classes
        one = {"source classes": "source class", "descriptions": "description"}.get(sources, sources)
        lines.append(f"  {'Prompts behind' if several else 'Logit of'} \"{ex['class']}\" (class logit "
                     f"{ex['class_logit']:.3f} = sum over {sources} of {ex['weights']} x {one} logit)"
                     f"{':' if several else ''}")
        most = max(ex["prompts"], key=lambda p: (p["mass"], p["logit_part"]))["prompt"]
        for p in ex["prompts"] if several else []:
            flag = "  <- weighed most" if p["prompt"] == most and len(ex["prompts"]) > 1 else ""
            lines.append(f"    prompt {p['prompt']}: mass {p['mass']:.3f} over {p['descriptions']} {sources}, "
                         f"part of the logit {p['logit_part']:.3f}{flag}")
        lines.append(f"  Top {sources} of \"{ex['class']}\" by weight x logit:")
        for r, d in enumerate(ex["descriptions"], 1):
            lines.append(f"    {r:>2}. {d['score']:8.3f} = {d['weight']:.3f} x {d['logit']:8.3f}  "
                         f"[prompt {d['prompt']}]  {d['text']}")
    return "\n".join(lines)


def format_cache_neighbours(ex):
    """Text lines of a Tip-Adapter explanation (TipCache.explain)."""
    lines = [f"  Cache behind \"{ex['class']}\" (class logit {ex['class_logit']:.3f} = CLIP {ex['clip_logit']:.3f} "
             f"+ cache {ex['cache_logit']:.3f}, alpha {ex['alpha']:.3f}, beta {ex['beta']:.3f}, "
             f"{ex['cache_entries']} entries); nearest training images:"]
    for n in ex["neighbours"]:
        image = n["image"] or f"cache entry {n['index']} (image unknown)"
        lines.append(f"    {n['rank']:>2}. affinity {n['affinity']:.3f}  part of the logit {n['contribution']:8.3f}  "
                     f"[{n['class']}]  {image}")
    if ex.get("note"):
        lines.append(f"  Note: {ex['note']}")
    return lines


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.topk < 1:
            raise ValueError(f"--topk must be at least 1, got {args.topk}.")
        if args.descriptions < 0:
            raise ValueError(f"--descriptions / --neighbours must be at least 0, got {args.descriptions}.")
        run_dir = check_run_dir(args.run_dir)
        images, failed = checked_images(args.images)
        for rec in failed:
            print(f"ERROR: {rec['error']}", file=sys.stderr)
        if not images:
            return 1
        run = load_run(run_dir, load_epoch=args.load_epoch, device=args.device, root=args.root or None,
                       quiet=not args.verbose)
        records = predict(run, images, topk=args.topk, n_descriptions=args.descriptions)
    except (FileNotFoundError, ValueError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"ERROR: {msg}", file=sys.stderr)
        return 1
    for rec in records:
        if "error" in rec:
            print(f"ERROR: {rec['error']}", file=sys.stderr)
    order = {path: i for i, path in enumerate(args.images)}
    records = sorted(failed + records, key=lambda rec: order.get(rec["image"], len(order)))
    code = 1 if any("error" in rec for rec in records) else 0
    if args.json:
        print(json.dumps({"run_dir": run.run_dir, "trainer": run.cfg.TRAINER.NAME, "epoch": run.epoch,
                          "predictions": records}, indent=2))
        return code
    print(f"Run {run.run_dir} ({run.cfg.TRAINER.NAME}, {run.cfg.DATASET.NAME}, checkpoint of epoch {run.epoch}, "
          f"device {run.device})")
    for rec in records:
        print(format_record(rec))
    return code


if __name__ == "__main__":
    sys.exit(main())
