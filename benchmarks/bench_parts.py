"""The in-process parts of benchmarks/bench.py: throughput, dvp, precision, cache, split, profile."""
import contextlib
import io
import time

import torch

from benchmarks.bench_common import (
    NODES,
    TRAINERS,
    bench_cfg,
    measure,
    method_opts,
    quiet_build,
    release,
    sync,
    time_steps,
    training_batch,
)


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
