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
import contextlib
import gc
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import engine  # noqa: E402
from benchmarks.data import make_descriptions, make_image_folder  # noqa: E402
from engine import build_trainer, get_cfg_default, set_random_seed  # noqa: E402

TRAINERS = ["VP", "AR", "AttrVR", "DVP_CSE", "DVP_CLS"]
NODES = {"VP": "VP", "AR": "AR", "AttrVR": "ATTRVR", "DVP_CSE": "DVP_CSE", "DVP_CLS": "DVP_CLS"}
KEY = "bench"
IMAGES = "bench_images"


# ---- machine, memory ----------------------------------------------------------------------------------
def machine(device):
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads()}
    try:
        with open("/proc/meminfo") as f:
            info["ram_gb"] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_mem_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2 ** 30, 1)
    return info


def rss_mb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Peak GPU memory allocated (CUDA) or peak resident set size (CPU, sampled every 2 ms) in a block."""

    def __init__(self, device):
        self.device, self.peak, self.base = device, 0.0, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2 ** 20
        else:
            self.base = self.peak = rss_mb()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_mb())


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- configs and trainers -----------------------------------------------------------------------------
def prepare_data(work, num_classes=10, folder=IMAGES, key=KEY):
    t0 = time.time()
    names = make_image_folder(os.path.join(work, folder), num_classes)
    make_descriptions(os.path.join(work, "descriptions"), key, names)
    return time.time() - t0


def bench_cfg(work, trainer, backbone, device, opts=(), out="out", folder=IMAGES, key=KEY):
    """The trainer's paper protocol (configs/trainers/<T>/vit_b16.yaml) on the generated data."""
    from plugins import load_plugins

    load_plugins()
    cfg = engine.extend_cfg(get_cfg_default())
    cfg.merge_from_file(os.path.join(REPO, "configs", "trainers", trainer, "vit_b16.yaml"))
    cfg.TRAINER.NAME = trainer
    cfg.DATASET.NAME = "ImageFolder"
    cfg.DATASET.ROOT = work
    cfg.DATASET.IMAGEFOLDER_DIR = folder
    cfg.DATASET.NUM_SHOTS = 16
    cfg.DATASET.DESCRIPTIONS_DIR = os.path.join(work, "descriptions")
    cfg.DATASET.DESCRIPTIONS_KEY = key
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.BACKBONE.PRETRAINED = False  # ViT-B/16: the architecture with random weights, no download
    cfg.USE_CUDA = device.type == "cuda"
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.OPTIM.LR = 0.01  # speed does not depend on it; keeps random-weight runs finite
    cfg.SEED = 1
    cfg.OUTPUT_DIR = os.path.join(work, out, trainer)
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    return cfg


def quiet_build(cfg):
    """Build a trainer with its printing silenced; returns (trainer, seconds)."""
    set_random_seed(cfg.SEED)
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = build_trainer(cfg)
    return trainer, time.time() - t0


def training_batch(trainer, batch_size, device):
    """A batch of random [0,1] images and labels, with the trainer set to an epoch that updates the prompts."""
    size = trainer.model.prompts.loader_size
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(batch_size, 3, size, size, generator=gen).to(device)
    label = torch.randint(0, trainer.num_classes, (batch_size,), generator=gen).to(device)
    trainer.epoch = trainer.STATS_EPOCHS  # an epoch that updates the prompts
    trainer.batch_idx, trainer.num_batches = 0, 1
    trainer.set_model_mode("train")
    return {"img": img, "label": label, "domain": torch.zeros_like(label)}


def time_steps(trainer, batch_size, steps, warmup, device):
    """Training and evaluation images/s of the trainer's own step on random [0,1] images, and peak memory."""
    batch = training_batch(trainer, batch_size, device)
    img = batch["img"]
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(warmup):
            trainer.forward_backward(batch)
        sync(device)
        with PeakMemory(device) as mem:
            t0, c0 = time.time(), time.process_time()
            for _ in range(steps):
                trainer.forward_backward(batch)
            sync(device)
            train_s, train_cpu_s = time.time() - t0, time.process_time() - c0
    trainer.set_model_mode("eval")
    with torch.no_grad():
        for _ in range(warmup):
            trainer.model_inference(img)
        sync(device)
        t0 = time.time()
        for _ in range(steps):
            trainer.model_inference(img)
        sync(device)
        eval_s = time.time() - t0
    return {"train_img_s": batch_size * steps / train_s, "eval_img_s": batch_size * steps / eval_s,
            "peak_mb": mem.peak, "base_mb": mem.base, "step_s": train_s / steps, "step_cpu_s": train_cpu_s / steps}


def measure(args, device, p, name, backbone, batch, steps, opts, **fields):
    """One result row: build ``name`` with ``opts``, time its steps, release it; ``fields`` go into the row."""
    trainer, build_s = quiet_build(bench_cfg(args.workdir, name, backbone, device, opts))
    row = time_steps(trainer, batch, steps, p["warmup"], device)
    row.update(trainer=name, backbone=backbone, batch=batch, build_s=build_s,
               prompts=trainer.model.prompts.num_prompts, texts=len(trainer.model.text_table),
               precision=trainer.effective_precision(), **fields)
    release(trainer)
    return row


def release(trainer):
    del trainer
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def plan(args, device):
    """Batch sizes and step counts for the device (CPU: small, so the default run takes minutes)."""
    cuda = device.type == "cuda"
    big = cuda or args.full
    return {
        "tiny_batch": 64 if big else 32, "tiny_steps": 5 if big else 2,
        "vit_batch": 64 if cuda else (2 if args.full else 1), "vit_steps": 10 if cuda else 1,
        "vit_trainers": TRAINERS if big else ["AR", "DVP_CLS"],
        "vit_m": [] if cuda else ["M", 4],  # CPU: 4 sentences per class, so the text tower finishes quickly
        "dvp_batches": [16, 64] if cuda else [2],
        "dvp_vit": big,  # CPU default: DVP batched vs sequential on test-tiny only
        "precision_vit": cuda,
        "warmup": 2 if cuda else 1,
        "trainer_steps": 10 if cuda else 5,  # trainers part: steps per timing (few images: noise on a busy CPU)
    }


def method_opts(trainer, extra):
    node = NODES[trainer]
    if not extra or trainer in ("VP", "AR"):
        return []
    opts = [f"TRAINER.{node}.{extra[0]}", extra[1]]
    if trainer == "AttrVR":
        opts += [f"TRAINER.{node}.K", min(3, extra[1])]
    return opts


# ---- parts ----------------------------------------------------------------------------------------------
def part_throughput(args, device, p):
    rows = []
    for backbone in args.backbones:
        vit = backbone != "test-tiny"
        batch, steps = (p["vit_batch"], p["vit_steps"]) if vit else (p["tiny_batch"], p["tiny_steps"])
        for name in (p["vit_trainers"] if vit else TRAINERS):
            r = measure(args, device, p, name, backbone, batch, steps, method_opts(name, p["vit_m"] if vit else []))
            rows.append(r)
            print(f"  {backbone:9s} {name:8s} train {r['train_img_s']:8.1f} img/s  eval {r['eval_img_s']:8.1f} img/s"
                  f"  peak {r['peak_mb']:8.0f} MB  (build {r['build_s']:.1f} s)", flush=True)
    return rows


def part_dvp(args, device, p):
    rows = []
    for backbone in args.backbones:
        vit = backbone != "test-tiny"
        if vit and not p["dvp_vit"]:
            continue
        batches = p["dvp_batches"] if vit else [p["tiny_batch"]]
        steps = p["vit_steps"] if vit else p["tiny_steps"]
        for batch in batches:
            for mode, chunk in (("batched", 0), ("sequential", batch)):
                opts = ["TRAINER.DVP_CLS.ENCODER_CHUNK", chunk, "TRAINER.DVP_CLS.V", 3]
                opts += method_opts("DVP_CLS", p["vit_m"] if vit else [])
                r = measure(args, device, p, "DVP_CLS", backbone, batch, steps, opts, mode=mode, v=3)
                rows.append(r)
                print(f"  {backbone:9s} B={batch:3d} {mode:10s} train {r['train_img_s']:8.1f} img/s  "
                      f"step {r['step_s'] * 1000:8.1f} ms  peak {r['peak_mb']:8.0f} MB", flush=True)
    return rows


def part_precision(args, device, p):
    rows = []
    modes = ["fp32", "fp16", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    for backbone in args.backbones:
        vit = backbone != "test-tiny"
        if vit and not p["precision_vit"]:
            continue
        batch, steps = (p["vit_batch"], p["vit_steps"]) if vit else (p["tiny_batch"], p["tiny_steps"])
        for prec in modes:
            opts = ["TRAINER.DVP_CLS.PRECISION", prec] + method_opts("DVP_CLS", p["vit_m"] if vit else [])
            r = measure(args, device, p, "DVP_CLS", backbone, batch, steps, opts)
            rows.append(r)
            print(f"  {backbone:9s} {r['precision']:5s} train {r['train_img_s']:8.1f} img/s  "
                  f"peak {r['peak_mb']:8.0f} MB", flush=True)
    return rows


def part_cache(args, device, p):
    from trainers.pipeline import set_loader_epoch

    rows = []
    for workers in (0, 2):
        for cache in (False, True):
            opts = ["DATALOADER.CACHE_TRAIN", cache, "DATALOADER.NUM_WORKERS", workers]
            trainer, build_s = quiet_build(bench_cfg(args.workdir, "AR", "test-tiny", device, opts))
            loader = trainer.train_loader_x
            times = []
            for epoch in range(2):
                set_loader_epoch(loader, epoch)
                t0 = time.time()
                n = sum(len(b["label"]) for b in loader)
                times.append(time.time() - t0)
            r = {"workers": workers, "cache": cache, "images": n, "epoch_s": min(times), "img_s": n / min(times),
                 "build_s": build_s, "cache_mb": (loader.dataset.cache.nbytes / 2 ** 20) if cache else 0.0}
            rows.append(r)
            print(f"  workers {workers} cache {str(cache):5s} {r['img_s']:8.1f} img/s (epoch {r['epoch_s']:.2f} s, "
                  f"build {build_s:.1f} s, cache {r['cache_mb']:.1f} MB)", flush=True)
            release(trainer)
    return rows


def part_split(args, device, p):
    """Plain path against the first-layer split, each trainer built once, timed ``--repeats`` times
    interleaved (a busy spell of a shared machine hits both modes); the minimum of each is kept."""
    rows = []
    for backbone in args.backbones:
        vit = backbone != "test-tiny"
        batch, steps = (p["vit_batch"], p["vit_steps"]) if vit else (p["tiny_batch"], p["tiny_steps"])
        for name in ("AR", "DVP_CLS"):
            node = NODES[name]
            built = {}
            for split in (False, True):
                opts = [f"TRAINER.{node}.FIRST_LAYER_SPLIT", split] + method_opts(name, p["vit_m"] if vit else [])
                built[split] = quiet_build(bench_cfg(args.workdir, name, backbone, device, opts))[0]
            runs = {split: [] for split in built}
            for _ in range(args.repeats):
                for split, trainer in built.items():
                    runs[split].append(time_steps(trainer, batch, steps, p["warmup"], device))
            for split, trainer in built.items():
                r = {"trainer": name, "backbone": backbone, "batch": batch,
                     "prompts": trainer.model.prompts.num_prompts,
                     "first_layer_split": trainer.model.first_layer_split_status, "repeats": args.repeats,
                     "threads": torch.get_num_threads(),
                     "step_s": min(x["step_s"] for x in runs[split]),
                     "step_cpu_s": min(x["step_cpu_s"] for x in runs[split]),
                     "all_step_s": [x["step_s"] for x in runs[split]],
                     "peak_mb": min(x["peak_mb"] for x in runs[split])}
                r["train_img_s"] = batch / r["step_s"]
                rows.append(r)
            plain, split = rows[-2], rows[-1]
            for r in (plain, split):
                r["speedup"] = plain["step_s"] / r["step_s"]
                r["cpu_speedup"] = plain["step_cpu_s"] / r["step_cpu_s"]
            print(f"  {backbone:9s} {name:8s} B={batch:3d} plain {plain['step_s'] * 1000:8.1f} ms  split "
                  f"{split['step_s'] * 1000:8.1f} ms  speed-up {split['speedup']:.2f}x wall, "
                  f"{split['cpu_speedup']:.2f}x CPU", flush=True)
            for trainer in built.values():
                release(trainer)
    return rows


ELEMENTWISE = ("aten::mul", "aten::add", "aten::add_", "aten::sub", "aten::div", "aten::sigmoid",
               "aten::sigmoid_backward", "aten::copy_", "aten::fill_", "aten::constant_pad_nd", "aten::sum")
FIRST_LAYER = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution",
               "aten::convolution_backward_input")


def _share(events, names, total):
    return sum(e.self_cpu_time_total for e in events if e.key in names) / total


def part_profile(args, device, p):
    """Where one DVP_CLS step (test-tiny, the CPU batch) spends its time, plain and split."""
    from torch.profiler import ProfilerActivity, profile

    rows = []
    batch = p["tiny_batch"]
    for split in (False, True):
        cfg = bench_cfg(args.workdir, "DVP_CLS", "test-tiny", device, ["TRAINER.DVP_CLS.FIRST_LAYER_SPLIT", split])
        trainer = quiet_build(cfg)[0]
        data = training_batch(trainer, batch, device)
        best = None
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.forward_backward(data)  # warm-up
            for _ in range(args.repeats):  # the least disturbed of the repeats
                activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
                with profile(activities=activities) as prof:
                    trainer.forward_backward(data)
                    sync(device)
                events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
                total = sum(e.self_cpu_time_total for e in events)
                if best is None or total < best[0]:
                    best = (total, events)
        total, events = best
        ops = sorted(events, key=lambda e: -e.self_cpu_time_total)

        row = {"first_layer_split": trainer.model.first_layer_split_status, "batch": batch,
               "aten_self_cpu_ms": total / 1000, "first_layer_share": _share(events, FIRST_LAYER, total),
               "elementwise_share": _share(events, ELEMENTWISE, total),
               "top_ops": [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1000, "calls": e.count,
                            "share": e.self_cpu_time_total / total} for e in ops[:12]]}
        rows.append(row)
        print(f"  split {row['first_layer_split']:14s} aten self CPU {row['aten_self_cpu_ms']:8.1f} ms; "
              f"first layer {row['first_layer_share']:.0%}, element-wise {row['elementwise_share']:.0%}; top: "
              + ", ".join(f"{o['op'][6:]} {o['share']:.0%}" for o in row["top_ops"][:6]), flush=True)
        release(trainer)
    return rows


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
        for row, (label, cmd) in zip(rows, runs):
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
        for trainer.batch_idx, batch in zip(range(steps), trainer.train_loader_x):
            trainer.forward_backward(batch)
        trainer.set_model_mode("eval")
        with torch.no_grad():
            for _, batch in zip(range(2), trainer.test_loader):
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
        code = (f"import sys; sys.path.insert(0, {REPO!r}); from benchmarks.bench import memory_child; "
                f"memory_child({args.workdir!r}, {cache})")
        secs, proc, _ = _run_child([sys.executable, "-c", code], _env())
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(cache=cache, process_s=secs)
        rows.append(row)
        print(f"  cache {str(cache):5s} max RSS {row['max_rss_mb']:8.0f} MB (cache {row['cache_mb']:.0f} MB, "
              f"{row['train_images']} training images, {row['texts']} texts, build {row['build_s']:.0f} s)", flush=True)
    return rows


def registered_trainers():
    """Every registered trainer (the built-in ones and VR_PLUGINS'), in registry order."""
    from plugins import load_plugins

    load_plugins()
    return list(engine.TRAINER_REGISTRY.registered_names())


def _timed(fn, *args):
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        fn(*args)
    return time.time() - t0


def _step_rate(fn, batch_size, steps, warmup, device):
    """Images per second of ``fn()`` over ``steps`` calls (after ``warmup``), printing silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(warmup):
            fn()
        sync(device)
        t0 = time.time()
        for _ in range(steps):
            fn()
        sync(device)
    return batch_size * steps / (time.time() - t0)


def time_any_trainer(trainer, p, device):
    """What a run of this trainer spends, measured the way train.py runs it, with no knowledge of the method:
    a FITTED trainer's ``fit()`` (feature extraction, its search, the fit); for a looped one ``before_train()``
    (resume check, and e.g. Tip-Adapter-F's cache extraction) then ``forward_backward`` on one real training
    batch (its own transform); for every trainer ``model_inference`` on one real test batch."""
    row = {"kind": "eval only"}
    if getattr(trainer, "TRAINS", True):
        if getattr(trainer, "FITTED", False):
            trainer.start_epoch, trainer.epoch, trainer.max_epoch = 0, 0, 1
            row.update(kind="fitted", prepare_s=_timed(trainer.fit))
        else:
            row.update(kind="steps", prepare_s=_timed(trainer.before_train))
            batch = next(iter(trainer.train_loader_x))
            trainer.epoch = getattr(trainer, "STATS_EPOCHS", 0)  # an epoch that updates what is learned
            trainer.batch_idx, trainer.num_batches = 0, len(trainer.train_loader_x)
            trainer.set_model_mode("train")
            row["train_img_s"] = _step_rate(lambda: trainer.forward_backward(batch), len(batch["label"]),
                                            p["trainer_steps"], p["warmup"], device)
            if hasattr(trainer, "close_writer"):
                trainer.close_writer()
    test_input, _ = trainer.parse_batch_test(next(iter(trainer.test_loader)))
    trainer.set_model_mode("eval")
    with torch.no_grad():
        row["eval_img_s"] = _step_rate(lambda: trainer.model_inference(test_input), len(test_input),
                                       p["trainer_steps"], p["warmup"], device)
    return row


def part_trainers(args, device, p):
    """Every registered trainer (``--trainers`` to choose) on ``test-tiny`` with its vit_b16.yaml protocol, the
    batch sizes set to the plan's: no per-method code, so a new trainer is covered once it is registered."""
    from engine.results import trainable_params

    best = {}
    names = args.trainers or registered_trainers()
    batch = p["tiny_batch"]
    for round_index in range(args.trainer_repeats):
        for name in names:
            row = _trainer_row(args, device, p, name, batch, trainable_params)
            if row is None:
                continue
            kept = best.setdefault(name, row)  # each number's best over the rounds (a busy machine only slows)
            for key in ("build_s", "prepare_s"):
                if key in row:
                    kept[key] = min(kept[key], row[key])
            for key in ("train_img_s", "eval_img_s"):
                if key in row:
                    kept[key] = max(kept[key], row[key])
            kept["rounds"] = round_index + 1
    return [best[name] for name in names if name in best]


def _trainer_row(args, device, p, name, batch, trainable_params):
    """One trainer's measurement (time_any_trainer), printed; None when it has no vit_b16.yaml."""
    if not os.path.isfile(os.path.join(REPO, "configs", "trainers", name, "vit_b16.yaml")):
        print(f"  {name}: skipped (no configs/trainers/{name}/vit_b16.yaml)", flush=True)
        return None
    opts = ["DATALOADER.TRAIN_X.BATCH_SIZE", batch, "DATALOADER.TEST.BATCH_SIZE", batch, "OPTIM.MAX_EPOCH", 1]
    cfg = bench_cfg(args.workdir, name, "test-tiny", device, opts, out="out_trainers")
    shutil.rmtree(cfg.OUTPUT_DIR, ignore_errors=True)  # no features or checkpoints reused from an earlier run
    trainer, build_s = quiet_build(cfg)
    row = {"trainer": name, "backbone": "test-tiny", "batch": batch, "build_s": build_s,
           "trainable_params": trainable_params(trainer),  # what results.json stores
           "train_images": len(trainer.dm.dataset.train_x), **time_any_trainer(trainer, p, device)}
    release(trainer)
    rate = f"train {row['train_img_s']:7.1f} img/s" if "train_img_s" in row else f"{row['kind']:>20s}"
    prepare = f"prepare / fit {row['prepare_s']:6.1f} s" if "prepare_s" in row else ""
    print(f"  {name:12s} {rate}  eval {row['eval_img_s']:7.1f} img/s  build {build_s:5.1f} s  {prepare}  "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return row


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
