"""What every benchmark part shares: the machine, peak memory, the generated data, a trainer built on
a bench config, timed training steps and the default plan (batch sizes, backbones)."""
import contextlib
import gc
import io
import os
import platform
import resource
import threading
import time

import torch

import engine
from benchmarks.data import make_descriptions, make_image_folder
from engine import build_trainer, get_cfg_default, set_random_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
