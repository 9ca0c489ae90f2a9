"""Speed and memory of the VR trainers (numbers go into benchmarks/README.md; never asserted in tests).

    python benchmarks/bench.py                      # CPU, default parts, a few minutes
    python benchmarks/bench.py --device cuda        # on a GPU: larger batches, fp16 / bf16, ViT-B/16 at batch 64
    python benchmarks/bench.py --parts e2e --e2e-epochs 200   # the full 200-epoch protocol
    python benchmarks/bench.py --parts memory                 # host memory with SUN397's 397 classes

Parts (``--parts``, comma-separated; default ``throughput,dvp,precision,cache,e2e``; ``memory`` and ``trainers``
on demand).
On a CPU the default is small (ViT-B/16 only for AR and DVP_CLS at batch 1, e2e with 3 epochs); ``--full``
runs every trainer on ViT-B/16 and larger batches.
  throughput  training / evaluation images per second and peak memory of each trainer (VP, AR, AttrVR,
              DVP_CSE, DVP_CLS) on test-tiny and on the ViT-B/16 architecture with random weights
  trainers    every registered trainer (or ``--trainers A,B``; ``--trainer-repeats N`` rounds, each number's best
              kept) on test-tiny with its vit_b16.yaml protocol, no
              per-method code: build, fit (fitted trainers: feature extraction + search) or before_train +
              training steps on a real batch, and evaluation steps on a real test batch
  dvp         DVP's v prompts in one encoder call (batched) against one call per prompt (ENCODER_CHUNK = B)
  precision   training steps in fp32 / bf16 (CPU, CUDA) / fp16 (CUDA) autocast
  cache       the training loader with DATALOADER.CACHE_TRAIN off / on, with 0 and 2 loader workers
  e2e         wall time of a whole DVP_CLS run (train.py, from process start) against
              benchmarks/reference_loop.py on the same generated dataset
  split       the training step of AR and DVP_CLS with FIRST_LAYER_SPLIT off (the plain path, as before
              the option) / on, interleaved ``--repeats`` times, the minimum wall and CPU time kept
  profile     torch.profiler of one DVP_CLS step (test-tiny), plain path and first-layer split: the
              operators by self CPU time and the share of the first layer and of element-wise work
  memory      peak host memory (max RSS) of a 16-shot DVP_CLS process with SUN397's 397 classes
              (6,352 training images; build, 3 training steps of batch 64, 2 test batches), cache on / off

Data: a generated image folder (10 classes of 500 x 375 JPEGs, 16 shots; benchmarks/data.py) under
``--workdir``. Results are printed and written to ``--json``; ``benchmarks/report.py`` turns the json into
markdown tables.
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from benchmarks.bench_common import machine, plan, prepare_data  # noqa: E402
from benchmarks.bench_parts import part_cache, part_dvp, part_precision, part_profile, part_split, part_throughput  # noqa: E402
from benchmarks.bench_process import part_e2e, part_memory  # noqa: E402
from benchmarks.bench_trainers import part_trainers  # noqa: E402

PARTS = {"throughput": part_throughput, "dvp": part_dvp, "precision": part_precision, "cache": part_cache,
         "e2e": part_e2e, "memory": part_memory, "split": part_split, "profile": part_profile,
         "trainers": part_trainers}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--parts", default="throughput,dvp,precision,cache,e2e")
    ap.add_argument("--backbones", default="test-tiny,ViT-B/16")
    ap.add_argument("--e2e-epochs", type=int, default=3)
    ap.add_argument("--e2e-repeats", type=int, default=1,
                    help="repeat the e2e runs (interleaved); the minimum wall and CPU times are kept "
                         "(each its own minimum)")
    ap.add_argument("--e2e-backbone", default="test-tiny", help="backbone of the e2e runs (random weights)")
    ap.add_argument("--e2e-workers", type=int, default=max(1, min(8, (os.cpu_count() or 1) // 2)),
                    help="DATALOADER.NUM_WORKERS of the toolkit's e2e runs (default: half the cores, 1 to 8)")
    ap.add_argument("--repeats", type=int, default=3, help="split, profile: interleaved repeats (the minimum is kept)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--full", action="store_true", help="CPU: every trainer on ViT-B/16, larger batches")
    ap.add_argument("--trainer-repeats", type=int, default=1,
                    help="trainers part: rounds over the trainers; each number's best is kept (a busy machine)")
    ap.add_argument("--trainers", default="", help="trainers part: comma-separated names (default: every "
                                                   "registered trainer)")
    ap.add_argument("--workdir", default=os.path.join(REPO, "output", "bench"))
    ap.add_argument("--json", default="", help="write the results here (default: <workdir>/bench_<device>.json)")
    args = ap.parse_args(argv)
    if args.e2e_repeats < 1 or args.repeats < 1 or args.trainer_repeats < 1:
        ap.error("--e2e-repeats, --repeats and --trainer-repeats must be at least 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = [s for s in parts if s not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {sorted(PARTS)}")
    args.backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    args.trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    device = torch.device(args.device)
    os.makedirs(args.workdir, exist_ok=True)
    import datasets  # noqa: F401  (registers ImageFolder)
    import trainers  # noqa: F401

    results = {"machine": machine(device), "device": args.device, "args": vars(args).copy(),
               "load_average_at_start": os.getloadavg()}
    print(f"machine: {results['machine']}")
    print(f"data: generated in {prepare_data(args.workdir):.1f} s under {args.workdir}")
    p = plan(args, device)
    for name in parts:
        print(f"[{name}]", flush=True)
        t0 = time.time()
        results[name] = PARTS[name](args, device, p)
        print(f"  ({time.time() - t0:.0f} s)", flush=True)
    path = args.json or os.path.join(args.workdir, f"bench_{args.device}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"results written to {path}")
    return results


if __name__ == "__main__":
    main()
