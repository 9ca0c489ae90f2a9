"""The parts of benchmarks/bench.py that time whole processes: e2e (train.py against
benchmarks/reference_loop.py) and memory (peak host memory of a SUN397-sized run)."""
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import torch

import engine
from benchmarks.bench_common import IMAGES, KEY, REPO, bench_cfg, quiet_build
from benchmarks.data import make_descriptions, make_image_folder


def _child_cpu_s():
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _run_child(cmd, env=None):
    """Run a command; return (wall seconds, completed process, CPU seconds of it and its children).

    CPU seconds are less sensitive than wall time to other programs sharing the machine."""
    t0, c0 = time.time(), _child_cpu_s()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    secs, cpu = time.time() - t0, _child_cpu_s() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return secs, proc, cpu


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["ENGINE_BACKEND"] = "builtin"
    return env


def _train_cmd(args, out, opts):
    cmd = [sys.executable, "train.py", "--root", args.workdir, "--output-dir", out, "--trainer", "DVP_CLS",
           "--config-file", "configs/trainers/DVP_CLS/vit_b16.yaml", "--backbone", args.e2e_backbone, "--seed", "1",
           "MODEL.BACKBONE.PRETRAINED", "False", "DATASET.NAME", "ImageFolder", "DATASET.IMAGEFOLDER_DIR", IMAGES,
           "DATASET.NUM_SHOTS", "16", "DATASET.DESCRIPTIONS_DIR", os.path.join(args.workdir, "descriptions"),
           "DATASET.DESCRIPTIONS_KEY", KEY,
           "OPTIM.MAX_EPOCH", str(args.e2e_epochs), "USE_CUDA", str(args.device == "cuda"),
           "TRAIN.PRINT_FREQ", "1000"]
    return cmd + [str(o) for o in opts]


def write_split(args, path):
    """The run's few-shot train set and test set (the same images the toolkit trains on) for the loop."""
    cfg = bench_cfg(args.workdir, "DVP_CLS", "test-tiny", torch.device("cpu"))
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = engine.build_dataset(cfg)
    split = {"classnames": list(dataset.classnames),
             "train": [[d.impath, d.label] for d in dataset.train_x],
             "test": [[d.impath, d.label] for d in dataset.test]}
    with open(path, "w") as f:
        json.dump(split, f)
    return split


def part_e2e(args, device, p):
    split_path = os.path.join(args.workdir, "bench_split.json")
    split = write_split(args, split_path)
    des = os.path.join(args.workdir, "descriptions", "attributes", f"{KEY}_des.json")
    workers = str(args.e2e_workers)
    runs = [
        ("reference-style loop (per-prompt encoder calls, 1 loader thread, test every epoch)",
         [sys.executable, "benchmarks/reference_loop.py", "--split", split_path, "--descriptions", des,
          "--epochs", str(args.e2e_epochs), "--device", args.device, "--backbone", args.e2e_backbone]),
        (f"toolkit, with the reference's per-epoch test curve (TEST.PER_EPOCH, CACHE_TEST, NUM_WORKERS {workers})",
         _train_cmd(args, os.path.join(args.workdir, "e2e_per_epoch"),
                    ["TEST.PER_EPOCH", "True", "DATALOADER.CACHE_TEST", "True", "DATALOADER.NUM_WORKERS", workers])),
        (f"toolkit, protocol (test after the last epoch, CACHE_TEST, NUM_WORKERS {workers})",
         _train_cmd(args, os.path.join(args.workdir, "e2e_default"),
                    ["DATALOADER.CACHE_TEST", "True", "DATALOADER.NUM_WORKERS", workers])),
    ]
    rows = [{"run": label, "wall_s": float("inf"), "cpu_s": float("inf"), "repeats": []} for label, _ in runs]
    for _ in range(args.e2e_repeats):  # interleaved, so that a busy spell of the machine hits every run
        for row, (label, cmd) in zip(rows, runs, strict=False):
            if "--output-dir" in cmd:  # a fresh run each time: train.py would resume from the last one
                shutil.rmtree(cmd[cmd.index("--output-dir") + 1], ignore_errors=True)
            load = os.getloadavg()[0]
            secs, proc, cpu = _run_child(cmd, _env())
            rep = {"wall_s": secs, "cpu_s": cpu, "load_before": load}
            last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            if last.startswith("{"):  # the reference loop's own breakdown
                rep.update({k: v for k, v in json.loads(last).items() if k in ("train_s", "test_s")})
            row["repeats"].append(rep)
            row["wall_s"], row["cpu_s"] = min(row["wall_s"], secs), min(row["cpu_s"], cpu)
            print(f"  {secs:8.1f} s wall {cpu:8.1f} s CPU  (load {load:.1f})  {label}", flush=True)
    for r in rows:
        r["speedup"] = rows[0]["wall_s"] / r["wall_s"]
        r["cpu_speedup"] = rows[0]["cpu_s"] / r["cpu_s"]
    print("  speedup (wall / CPU): " + ", ".join(f"{r['speedup']:.2f} / {r['cpu_speedup']:.2f}" for r in rows),
          flush=True)
    return {"epochs": args.e2e_epochs, "backbone": args.e2e_backbone, "workers": args.e2e_workers,
            "train_images": len(split["train"]), "test_images": len(split["test"]),
            "classes": len(split["classnames"]), "runs": rows}


def memory_child(workdir, cache, steps=3):
    """In a fresh process: build DVP_CLS on the 397-class folder (cache prefill, text embeddings, PRM),
    run ``steps`` training steps of batch 64 from the real loader and two test batches; print the max RSS."""
    import datasets  # noqa: F401
    import trainers  # noqa: F401
    from trainers.pipeline import set_loader_epoch

    cfg = bench_cfg(workdir, "DVP_CLS", "test-tiny", torch.device("cpu"),
                    ["DATALOADER.CACHE_TRAIN", cache, "TRAINER.DVP_CLS.KMEANS_N_INIT", 1], out="mem",
                    folder="bench_sun397", key="bench397")
    t0 = time.time()
    trainer, build_s = quiet_build(cfg)
    trainer.epoch, trainer.num_batches = 1, len(trainer.train_loader_x)
    set_loader_epoch(trainer.train_loader_x, 1)
    trainer.set_model_mode("train")
    with contextlib.redirect_stdout(io.StringIO()):
        for trainer.batch_idx, batch in zip(range(steps), trainer.train_loader_x, strict=False):  # noqa: B020
            trainer.forward_backward(batch)
        trainer.set_model_mode("eval")
        with torch.no_grad():
            for _, batch in zip(range(2), trainer.test_loader, strict=False):
                trainer.model_inference(batch["img"])
    cache_mb = trainer.train_loader_x.dataset.cache.nbytes / 2 ** 20 if cache else 0.0
    print(json.dumps({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cache_mb": cache_mb,
                      "train_images": len(trainer.dm.dataset.train_x), "classes": trainer.num_classes,
                      "texts": len(trainer.model.text_table), "build_s": build_s, "wall_s": time.time() - t0}))


def part_memory(args, device, p):
    """Peak host memory of a 16-shot DVP_CLS run with SUN397's 397 classes (6,352 training images)."""
    t0 = time.time()
    names = make_image_folder(os.path.join(args.workdir, "bench_sun397"), 397, train=16, val=1, test=2,
                              size=(400, 300), seed=1)
    make_descriptions(os.path.join(args.workdir, "descriptions"), "bench397", names)
    print(f"  data: 397 classes x 19 images of 400 x 300 ({time.time() - t0:.0f} s)", flush=True)
    rows = []
    for cache in (True, False):
        code = (f"import sys; sys.path.insert(0, {REPO!r}); from benchmarks.bench_process import memory_child; "
                f"memory_child({args.workdir!r}, {cache})")
        secs, proc, _ = _run_child([sys.executable, "-c", code], _env())
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(cache=cache, process_s=secs)
        rows.append(row)
        print(f"  cache {str(cache):5s} max RSS {row['max_rss_mb']:8.0f} MB (cache {row['cache_mb']:.0f} MB, "
              f"{row['train_images']} training images, {row['texts']} texts, build {row['build_s']:.0f} s)", flush=True)
    return rows
