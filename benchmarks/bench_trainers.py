"""The trainers part of benchmarks/bench.py: every registered trainer on test-tiny, no per-method code."""
import contextlib
import io
import os
import shutil
import time

import torch

import engine
from benchmarks.bench_common import REPO, bench_cfg, quiet_build, release, sync


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
