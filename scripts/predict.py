"""Apply a trained run to new images: the top classes with their probabilities, and for DVP why.

    python scripts/predict.py RUN_DIR IMAGE [IMAGE ...] [--topk 5] [--load-epoch N] [--device auto]

RUN_DIR is the OUTPUT_DIR of a training run (train.py). The model is rebuilt from RUN_DIR/config.yaml
and its latest checkpoint (or --load-epoch N); the dataset recorded in the config must still exist
(it gives the class names and the test transform; --root points at a moved dataset). Images go through
the run's own test transform.

For a DVP run (PRM aggregation) the predicted class's logit is a sum over descriptions of
weight x description logit; the script prints, for the predicted class, how much of it each visual
prompt contributes (its PRM mass, which marks the prompt that weighed most, and its part of the logit)
and the descriptions with the largest weight x logit (descriptions of weight 0 do not count).
A model with an ``explain(images, labels, classnames=..., top=...)`` method (one JSON-able record per image,
for its predicted class) is explained by it: Tip-Adapter / Tip-Adapter-F list the cache neighbours (the
training images whose keys have the highest affinity with the image, their labels, affinity and part of the
predicted class's logit; --neighbours N of them).
--json prints the same as JSON.
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
    p.add_argument("--descriptions", type=int, default=5,
                   help="DVP: descriptions of the predicted class to print (default 5)")
    p.add_argument("--neighbours", type=int, default=5,
                   help="Tip-Adapter: cache neighbours of the predicted class to print (default 5)")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.add_argument("--verbose", action="store_true", help="show what rebuilding the model prints")
    return p


def slot_weights(model):
    """(C, M') weight of every description in its class logit, and its name; None if not a fixed weighted sum."""
    table, agg = getattr(model, "text_table", None), getattr(model, "aggregation", None)
    if table is None or agg is None or table.num_slots < 2:  # CoOp; one text per class: nothing to explain
        return None, ""
    weights = agg.text_weights(table.num_classes, table.num_slots)
    return (None, "") if weights is None else (weights.detach().float(), agg.WEIGHT_KIND)


def explain(model, weights, kind, z, label, n_descriptions):
    """For class ``label`` of one image: each prompt's PRM mass and part of the logit; top descriptions."""
    table = model.text_table
    w = weights[label].to(z.device)
    scores = w * z[label]  # the class logit is scores.sum()
    prompts = table.prompt_grid()[label].to(z.device)
    texts = table.texts_of_class(label)
    parts = []
    for i in range(table.num_prompts):
        mine = prompts == i
        parts.append({"prompt": i, "mass": float(w[mine].sum()), "logit_part": float(scores[mine].sum()),
                      "descriptions": int(mine.sum())})
    used = torch.nonzero(w > 0).flatten()  # descriptions with weight 0 do not enter the logit
    order = used[torch.argsort(scores[used], descending=True)][:max(0, n_descriptions)].tolist()
    descriptions = [{"text": texts[j], "prompt": int(prompts[j]), "weight": float(w[j]), "logit": float(z[label, j]),
                     "score": float(scores[j])} for j in order]
    return {"weights": kind, "class_logit": float(scores.sum()), "prompts": parts, "descriptions": descriptions}


def predict(run, images, topk=5, n_descriptions=5, n_neighbours=5):
    """One record per image: top classes (with probabilities) and, for weighted description sums or a model
    with an ``explain`` method, why."""
    model = run.model
    weights, kind = slot_weights(model)
    explain_model = getattr(model, "explain", None) if weights is None else None
    k = max(1, min(int(topk), len(run.classnames)))
    records = []
    for start in range(0, len(images), BATCH):
        paths = images[start:start + BATCH]
        batch = run.images_to_batch(paths)
        with torch.no_grad():
            if weights is not None:
                logits, z = model.forward_with_descriptions(batch)
            else:
                logits, z = run.class_logits(batch), None
        probs = torch.softmax(logits.float(), dim=1)
        top = torch.topk(probs, k, dim=1)
        explained = (explain_model(batch, top.indices[:, 0].tolist(), classnames=run.classnames, top=n_neighbours)
                     if explain_model is not None else None)
        for b, path in enumerate(paths):
            rec = {"image": path, "top": [{"class": run.classnames[int(i)], "label": int(i), "probability": float(p)}
                                          for p, i in zip(top.values[b], top.indices[b])]}
            if z is not None:
                label = int(top.indices[b, 0])
                rec["explanation"] = {"class": run.classnames[label],
                                      **explain(model, weights, kind, z[b].float(), label, n_descriptions)}
            elif explained is not None:
                rec["explanation"] = {"class": run.classnames[int(top.indices[b, 0])], **explained[b]}
            records.append(rec)
    return records


def format_record(rec):
    width = max(len(t["class"]) for t in rec["top"])
    lines = [f"== {rec['image']}"]
    for r, t in enumerate(rec["top"], 1):
        lines.append(f"  {r:>2}. {t['class']:<{width}}  {100.0 * t['probability']:6.2f}%")
    ex = rec.get("explanation")
    if ex and ex.get("kind") == "cache_neighbours":
        lines += format_cache_neighbours(ex)
    elif ex:
        lines.append(f"  Prompts behind \"{ex['class']}\" (class logit {ex['class_logit']:.3f} = sum over "
                     f"descriptions of {ex['weights']} x description logit):")
        most = max(ex["prompts"], key=lambda p: (p["mass"], p["logit_part"]))["prompt"]
        for p in ex["prompts"]:
            flag = "  <- weighed most" if p["prompt"] == most and len(ex["prompts"]) > 1 else ""
            lines.append(f"    prompt {p['prompt']}: mass {p['mass']:.3f} over {p['descriptions']} descriptions, "
                         f"part of the logit {p['logit_part']:.3f}{flag}")
        lines.append(f"  Top descriptions of \"{ex['class']}\" by weight x logit:")
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
        if args.neighbours < 0:
            raise ValueError(f"--neighbours must be at least 0, got {args.neighbours}.")
        run_dir = check_run_dir(args.run_dir)
        images = check_images(args.images)
        run = load_run(run_dir, load_epoch=args.load_epoch, device=args.device, root=args.root or None,
                       quiet=not args.verbose)
        records = predict(run, images, topk=args.topk, n_descriptions=args.descriptions,
                          n_neighbours=args.neighbours)
    except (FileNotFoundError, ValueError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"ERROR: {msg}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"run_dir": run.run_dir, "trainer": run.cfg.TRAINER.NAME, "epoch": run.epoch,
                          "predictions": records}, indent=2))
        return 0
    print(f"Run {run.run_dir} ({run.cfg.TRAINER.NAME}, {run.cfg.DATASET.NAME}, checkpoint of epoch {run.epoch}, "
          f"device {run.device})")
    for rec in records:
        print(format_record(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
