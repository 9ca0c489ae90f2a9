"""Speed of the feature-based baselines (LinearProbe, LPPlusPlus, CLIPAdapter, TipAdapter, TipAdapterF).

Each trainer runs in-process on generated data (benchmarks/data.py: 10 classes, 16 training, 4 val and 48
test images per class, 250 x 188 JPEGs by default) with ``test-tiny`` and its vit_b16.yaml protocol (fewer
epochs): the whole fit / training (feature extraction, the search or the epochs, the final test) is timed,
then one more pass over the test set (evaluation images per second; the frozen encoder runs on every test
image, images decoded each time). Measurements only; no test asserts a timing.

    python benchmarks/bench_features.py [--device cpu|cuda] [--backbone test-tiny] [--epochs 2]
    python benchmarks/bench_features.py --trainers MaPLe --opts TRAINER.MAPLE.PROMPT_DEPTH 2   # any trainer

``--trainers`` takes any registered trainer with a vit_b16.yaml (default: the feature baselines); ``--opts``
KEY VALUE pairs go to every run (e.g. what test-tiny needs: its towers have 2 blocks).
"""
import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

TRAINERS = ("LinearProbe", "LPPlusPlus", "TipAdapter", "CLIPAdapter", "TipAdapterF")


def measure(name, root, folder, backbone, device, epochs, opts=()):
    import engine
    import train
    from engine.results import trainable_params

    out = tempfile.mkdtemp(prefix=f"bench_{name}_")
    args = train.build_parser().parse_args([
        "--root", root, "--trainer", name, "--seed", "1", "--output-dir", out,
        "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "imagefolder.yaml"),
        "--config-file", os.path.join(REPO, "configs", "trainers", name, "vit_b16.yaml"),
        "DATASET.IMAGEFOLDER_DIR", folder, "DATASET.NUM_SHOTS", "16", "MODEL.BACKBONE.NAME", backbone,
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "32", "OPTIM.MAX_EPOCH", str(epochs),
        "TRAIN.PRINT_FREQ", "1000", "USE_CUDA", str(device == "cuda"), *opts])
    cfg = train.setup_cfg(args)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = engine.build_trainer(cfg)
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        trainer.test()
        test_s = time.perf_counter() - start
    n_test = len(trainer.dm.dataset.test)
    return {"trainer": name, "backbone": backbone, "train_images": len(trainer.dm.dataset.train_x),
            "fit_or_train_s": train_s, "eval_img_s": n_test / test_s, "trainable_params": trainable_params(trainer)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--backbone", default="test-tiny")
    ap.add_argument("--epochs", type=int, default=2, help="OPTIM.MAX_EPOCH of CLIPAdapter / TipAdapterF")
    ap.add_argument("--image-size", type=int, nargs=2, default=(250, 188), help="generated JPEG width height")
    ap.add_argument("--trainers", default=",".join(TRAINERS), help="comma-separated registered trainer names")
    ap.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config pairs for every run")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from benchmarks.data import make_image_folder

    root = tempfile.mkdtemp(prefix="bench_features_")
    make_image_folder(os.path.join(root, "images"), num_classes=10, train=16, val=4, test=48,
                      size=tuple(args.image_size))
    print("| trainer | backbone | train images | fit / train (s, incl. final test) | eval img/s | trainable |")
    print("|---|---|---|---|---|---|")
    for name in [t.strip() for t in args.trainers.split(",") if t.strip()]:
        r = measure(name, root, "images", args.backbone, args.device, args.epochs, args.opts)
        print(f"| `{r['trainer']}` | {r['backbone']} | {r['train_images']} | {r['fit_or_train_s']:.1f} | "
              f"{r['eval_img_s']:.0f} | {r['trainable_params']:,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
