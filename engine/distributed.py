"""Data-parallel training of one run over several processes (``torchrun --nproc_per_node N train.py ...``).

Semantics are those of PyTorch DistributedDataParallel, written out explicitly because only a few prompt
tensors are trained (CLIP is frozen), so wrapping the model in DDP would buy nothing:

* the global batch (DATALOADER.TRAIN_X.BATCH_SIZE) is split over the ranks: every global batch of the
  one-process run is cut into W strided parts, rank r taking part r (``ShardedBatchSampler``);
* gradients are summed over ranks, each weighted by its local number of samples, and divided by the
  global number of samples (``sync_gradients``): for a loss that is a mean over the batch this is exactly
  the one-process gradient, also when the last batch splits unevenly;
* evaluation splits the test set into W contiguous parts without duplicates (``ShardedSequentialSampler``)
  and the evaluator gathers the labels (``gather_lists``) before computing any number;
* statistics such as DVP's PRM counts are summed with ``all_reduce_sum`` before they are used;
* only rank 0 writes files and prints.

Every helper is a no-op in a single process, so the one-process code path is unchanged.
"""
import contextlib
import math
import os
import random

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not launched by it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} is not an integer; launch multi-process "
                         f"runs with torchrun --nproc_per_node N train.py ...") from None


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


def init_from_env(use_cuda: bool = True) -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Backend: nccl when CUDA is used, gloo on CPU. Returns True when this is a multi-process run.
    """
    if env_world_size() <= 1:
        return False
    if is_distributed():
        return True
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise ValueError(f"WORLD_SIZE={env_world_size()} is set but {key} is not: start multi-process runs "
                             f"with torchrun --nproc_per_node N train.py ... (it sets all of them).")
    cuda = bool(use_cuda) and torch.cuda.is_available()
    if cuda:
        n_gpu = torch.cuda.device_count()
        lr = int(os.environ["LOCAL_RANK"])
        if lr >= n_gpu:
            raise ValueError(f"LOCAL_RANK={lr} but this machine has {n_gpu} GPU(s): use --nproc_per_node at most "
                             f"{n_gpu}, or USE_CUDA False to train on the CPU (gloo).")
        torch.cuda.set_device(lr)
    dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
    return True


def shutdown():
    """Leave the process group (after the last collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(use_cuda: bool = True) -> torch.device:
    """cuda:LOCAL_RANK in a multi-GPU run, cuda in a one-GPU run, else cpu."""
    if use_cuda and torch.cuda.is_available():
        return torch.device("cuda", local_rank()) if is_distributed() else torch.device("cuda")
    return torch.device("cpu")


def barrier():
    if is_distributed():
        dist.barrier()


def _comm_device(tensor: torch.Tensor) -> torch.device:
    """nccl reduces CUDA tensors only; gloo reduces CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place (also returned). No-op in one process."""
    if not is_distributed():
        return tensor
    dev = _comm_device(tensor)
    if tensor.device == dev:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor
    buf = tensor.to(dev)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    tensor.copy_(buf)
    return tensor


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank."""
    if not is_distributed():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.long)
    dev = _comm_device(t)
    t = t.to(dev)
    dist.broadcast(t, src=0)
    return int(t.item())


def gather_lists(*lists):
    """Concatenate each list over the ranks, in rank order (every rank gets the result)."""
    if not is_distributed():
        return tuple(list(x) for x in lists)
    parts = [None] * world_size()
    dist.all_gather_object(parts, tuple(list(x) for x in lists))
    return tuple([item for part in parts for item in part[i]] for i in range(len(lists)))


def sync_gradients(parameters, local_count: float = 1.0, loss_is_finite: bool = True):
    """Make every rank's ``.grad`` the gradient of the mean loss over the GLOBAL batch.

    Each rank's gradient of its local mean loss is weighted by its local sample count, summed over
    ranks (one all-reduce of one flat buffer) and divided by the global count. A non-finite loss on any
    rank raises FloatingPointError on every rank (so no rank is left waiting in a collective).
    """
    if not is_distributed():
        if not loss_is_finite:
            raise FloatingPointError("Loss is infinite or NaN!")
        return
    params = [p for p in parameters if p.requires_grad]
    dev = _comm_device(params[0]) if params else torch.device("cpu")
    grads = []
    for p in params:
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        grads.append(g.detach().reshape(-1).to(dev, torch.float32))
    head = torch.tensor([float(local_count), 0.0 if loss_is_finite else 1.0], device=dev)
    flat = torch.cat([head] + [g * float(local_count) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    total, bad = flat[0].item(), flat[1].item()
    if bad > 0:
        raise FloatingPointError(f"Loss is infinite or NaN! (on {int(bad)} of {world_size()} processes)")
    if total <= 0:
        raise RuntimeError("sync_gradients: the global batch holds no sample.")
    offset = 2
    for p, g in zip(params, grads, strict=False):
        n = g.numel()
        new = (flat[offset:offset + n] / total).view_as(p).to(p.device, p.dtype)
        offset += n
        if p.grad is None:
            p.grad = new
        else:
            p.grad.copy_(new)


def local_batch_count(batch) -> int:
    """Number of real (not padding) samples in a training batch dict."""
    if isinstance(batch, dict):
        if "valid" in batch:
            return int(torch.as_tensor(batch["valid"]).sum().item())
        for key in ("label", "img"):
            if key in batch and hasattr(batch[key], "shape"):
                return int(batch[key].shape[0])
    return 1


@contextlib.contextmanager
def seeded_rngs(seed: int):
    """Run a block with the python, numpy and torch CPU global RNGs seeded by ``seed``, restoring them after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    gen = torch.default_generator  # samplers draw from the CPU generator (torch.manual_seed would reseed CUDA too)
    torch_state = gen.get_state()
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    gen.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        gen.set_state(torch_state)


def epoch_order(base_sampler, seed: int, epoch: int):
    """The sample order of ``base_sampler`` in ``epoch``, drawn under a seed made of (seed, epoch): the same
    in every process, and untouched by whatever else used the global RNGs (tests, augmentation)."""
    with seeded_rngs(int(seed) + 1000003 * int(epoch)):
        return list(iter(base_sampler))


class SeededOrderSampler(Sampler):
    """``base_sampler`` with its order drawn by ``epoch_order`` (one-process runs that must agree with
    multi-process ones, and with themselves whatever else draws random numbers)."""

    def __init__(self, base_sampler, seed: int):
        self.base, self.seed, self.epoch = base_sampler, int(seed), 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.base)

    def __iter__(self):
        order = epoch_order(self.base, self.seed, self.epoch)
        self.epoch += 1  # a caller that never calls set_epoch still gets a new order every epoch
        return iter(order)


class ShardedBatchSampler(Sampler):
    """Rank r's part of every global batch of the one-process sample order.

    The order comes from ``base_sampler`` (sequential, random, ...), drawn in every epoch under the same
    seed on all ranks (``epoch_order``), so the ranks agree on it without communicating. \
Global batch k = order[kB:(k+1)B];
    rank r takes its entries r, r+W, r+2W, ... If a last global batch holds fewer samples than ranks, a
    rank left without one gets a padding sample marked ``valid = False`` (weight 0 in ``sync_gradients``,
    excluded from statistics), so that every rank runs the same number of steps.
    """

    def __init__(self, base_sampler, global_batch_size: int, drop_last: bool, seed: int,
                 num_replicas: int = None, rank_: int = None):
        self.base = base_sampler
        self.batch_size = int(global_batch_size)
        self.drop_last = bool(drop_last)
        self.world = world_size() if num_replicas is None else int(num_replicas)
        self.rank = rank() if rank_ is None else int(rank_)
        if self.batch_size % self.world:
            raise ValueError(f"DATALOADER.TRAIN_X.BATCH_SIZE={self.batch_size} is the GLOBAL batch size and must be "
                             f"divisible by the number of processes ({self.world}); pick a multiple of "
                             f"{self.world} or change --nproc_per_node.")
        self.order = SeededOrderSampler(base_sampler, seed)  # the same order on every rank

    def set_epoch(self, epoch: int):
        self.order.set_epoch(epoch)

    def __len__(self):
        n = len(self.base)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        order = list(self.order)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                break
            mine = chunk[self.rank::self.world]
            if mine:
                yield [(idx, True) for idx in mine]
            else:
                yield [(chunk[0], False)]


class ShardedSequentialSampler(Sampler):
    """Rank r's contiguous part of 0..n-1 (parts differ in length by at most one; no duplicates)."""

    def __init__(self, n: int, num_replicas: int = None, rank_: int = None):
        world = world_size() if num_replicas is None else int(num_replicas)
        r = rank() if rank_ is None else int(rank_)
        per, extra = divmod(int(n), world)
        self.start = r * per + min(r, extra)
        self.stop = self.start + per + (1 if r < extra else 0)

    def __len__(self):
        return self.stop - self.start

    def __iter__(self):
        return iter(range(self.start, self.stop))


class PaddingAwareDataset(torch.utils.data.Dataset):
    """Reads the ``(index, valid)`` keys of ``ShardedBatchSampler``; adds ``valid`` to dict samples."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):
        # expose the wrapped dataset's attributes (data_source, transform, ...) like the plain loader did
        inner = self.__dict__.get("dataset")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __getitem__(self, key):
        idx, valid = key
        item = self.dataset[idx]
        if isinstance(item, dict):
            item = dict(item)
            item["valid"] = bool(valid)
        return item


def sharded_loader(cfg, dataset, sampler, batch_size, is_train, drop_last=False, persistent_workers=False):
    """This process's part of a loader in a multi-process run.

    Training: ``batch_size`` is the GLOBAL batch, split over the ranks (``ShardedBatchSampler``; the order
    of ``sampler`` is drawn under a seed shared by all ranks: SEED, or one drawn by rank 0 when SEED < 0).
    Evaluation: a contiguous part of the data per rank, no sample twice, ``batch_size`` per rank.
    """
    pin = torch.cuda.is_available() and cfg.USE_CUDA
    workers = cfg.DATALOADER.NUM_WORKERS
    if is_train:
        seed = cfg.SEED if cfg.SEED >= 0 else broadcast_int(int(torch.randint(0, 2 ** 31 - 1, ()).item()))
        batches = ShardedBatchSampler(sampler, batch_size, drop_last, seed)
        loader = torch.utils.data.DataLoader(PaddingAwareDataset(dataset), batch_sampler=batches,
                                             num_workers=workers, pin_memory=pin,
                                             persistent_workers=bool(persistent_workers and workers > 0))
        if len(loader) == 0:
            raise ValueError(f"The training set ({len(dataset)} samples) yields no batch of {batch_size}.")
        return loader
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=ShardedSequentialSampler(len(dataset)),
                                       num_workers=workers, pin_memory=pin)
