"""Multi-process training (engine/distributed.py): sharding, gradient averaging, gathering, and whole runs
under torchrun (gloo, CPU) that match the one-process run over the same global batch."""
import json
import os
import socket
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler, SequentialSampler

from engine import distributed
from engine.distributed import ShardedBatchSampler, ShardedSequentialSampler
from tests.conftest import run_cmd


# ---- sharding (no processes needed) ------------------------------------------------------------------
def _rank_batches(base, batch, world, drop_last=False, seed=3, epochs=1):
    samplers = [ShardedBatchSampler(base, batch, drop_last, seed, num_replicas=world, rank_=r) for r in range(world)]
    out = []
    for _ in range(epochs):
        per_rank = []
        for s in samplers:
            torch.rand(7)  # the ranks' global RNGs drift apart (augmentation); the order must not
            per_rank.append(list(iter(s)))
        out.append(per_rank)
    return samplers, out


def test_every_global_batch_is_split_over_the_ranks_without_duplicates():
    base = SequentialSampler(range(13))
    samplers, [per_rank] = _rank_batches(base, batch=4, world=2)
    assert [len(s) for s in samplers] == [4, 4]
    assert per_rank[0] == [[(0, True), (2, True)], [(4, True), (6, True)], [(8, True), (10, True)], [(12, True)]]
    # the last global batch holds one sample: rank 1 runs a padding sample that counts for nothing
    assert per_rank[1][-1] == [(12, False)]
    for k in range(4):
        real = sorted(i for r in range(2) for i, ok in per_rank[r][k] if ok)
        assert real == list(range(4 * k, min(4 * k + 4, 13)))


def test_random_order_is_shared_by_the_ranks_and_changes_per_epoch():
    base = RandomSampler(range(10))
    _, epochs = _rank_batches(base, batch=4, world=2, epochs=2)
    orders = []
    for per_rank in epochs:
        seen = sorted(i for r in range(2) for b in per_rank[r] for i, ok in b if ok)
        assert seen == list(range(10))  # every sample exactly once per epoch
        orders.append([i for b0, b1 in zip(*per_rank, strict=False) for i, _ in b0 + b1])
    assert orders[0] != orders[1]


def test_drop_last_and_batch_divisibility():
    samplers, [per_rank] = _rank_batches(SequentialSampler(range(10)), batch=4, world=2, drop_last=True)
    assert len(samplers[0]) == 2 and len(per_rank[1]) == 2
    with pytest.raises(ValueError, match="GLOBAL batch size and must be divisible by the number of processes"):
        ShardedBatchSampler(SequentialSampler(range(10)), 6, False, 0, num_replicas=4, rank_=0)


def test_evaluation_shards_are_contiguous_and_cover_each_sample_once():
    parts = [list(ShardedSequentialSampler(11, num_replicas=3, rank_=r)) for r in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert list(ShardedSequentialSampler(1, num_replicas=2, rank_=1)) == []


def test_single_process_helpers_are_no_ops():
    t = torch.tensor([2.0])
    assert distributed.all_reduce_sum(t) is t and t.item() == 2.0
    assert distributed.gather_lists([1, 2], [3]) == ([1, 2], [3])
    assert distributed.world_size() == 1 and distributed.is_main_process()
    with pytest.raises(FloatingPointError):
        distributed.sync_gradients([], 1, loss_is_finite=False)


# ---- collectives in two spawned processes -----------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collectives_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert distributed.init_from_env(use_cuda=False)
    torch.manual_seed(0)
    x = torch.randn(5, 3)  # the global batch: 5 samples, rank 0 has 4 of them, rank 1 has 1
    p_ref = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    ((x @ p_ref) ** 2).mean().backward()  # one-process gradient of the mean loss
    mine = x[:4] if rank == 0 else x[4:]
    p = torch.nn.Parameter(p_ref.detach().clone())
    ((mine @ p) ** 2).mean().backward()
    distributed.sync_gradients([p], local_count=len(mine))
    result = {"grad": p.grad.tolist(), "ref": p_ref.grad.tolist()}
    # a padding sample (weight 0) on rank 1 leaves rank 0's gradient as the global one
    q = torch.nn.Parameter(p_ref.detach().clone())
    ((x[:1] @ q) ** 2).mean().backward()
    distributed.sync_gradients([q], local_count=1 if rank == 0 else 0)
    q_ref = torch.nn.Parameter(p_ref.detach().clone())
    ((x[:1] @ q_ref) ** 2).mean().backward()
    result["padded"], result["padded_ref"] = q.grad.tolist(), q_ref.grad.tolist()
    try:  # a NaN loss on one rank stops every rank
        distributed.sync_gradients([q], 1, loss_is_finite=(rank == 0))
        result["nan"] = "no error"
    except FloatingPointError as err:
        result["nan"] = str(err)
    result["gathered"] = distributed.gather_lists([rank] * (rank + 1), [f"r{rank}"])
    result["summed"] = distributed.all_reduce_sum(torch.tensor([rank + 1, 10])).tolist()
    result["broadcast"] = distributed.broadcast_int(100 + rank)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    distributed.shutdown()


def test_collectives_give_one_process_numbers(tmp_path):
    # fork: the children start in milliseconds (spawn would re-import torch and the engine in each)
    torch.multiprocessing.start_processes(_collectives_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                                          join=True, start_method="fork")
    for rank in range(2):
        res = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert res["grad"] == pytest.approx(res["ref"], rel=1e-6)
        assert res["padded"] == pytest.approx(res["padded_ref"], rel=1e-6)
        assert "Loss is infinite or NaN! (on 1 of 2 processes)" in res["nan"]
        assert res["gathered"] == [[0, 1, 1], ["r0", "r1"]]
        assert res["summed"] == [3, 20]
        assert res["broadcast"] == 100


def _rng_states_worker(rank, world, port, out_dir):
    """Each rank's generators go their own way; a checkpoint's list holds every rank's, and each rank restores its
    own (what a resumed multi-process run of a trainer on the process-wide generators needs)."""
    import random

    from engine import rng_states

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert distributed.init_from_env(use_cuda=False)
    torch.manual_seed(rank), random.seed(rank), np.random.seed(rank)
    saved = rng_states.capture_all_ranks()
    draws = [torch.rand(3).tolist(), random.random(), float(np.random.rand())]
    torch.manual_seed(7), random.seed(7), np.random.seed(7)  # the same state on both ranks: what a fresh start has
    why = rng_states.restore_rank(saved)
    again = [torch.rand(3).tolist(), random.random(), float(np.random.rand())]
    with open(os.path.join(out_dir, f"rng{rank}.json"), "w") as f:
        json.dump({"entries": len(saved), "why": why, "draws": draws, "again": again}, f)
    distributed.shutdown()


def test_every_ranks_generator_states_are_saved_and_restored(tmp_path):
    torch.multiprocessing.start_processes(_rng_states_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                                          join=True, start_method="fork")
    ranks = [json.loads((tmp_path / f"rng{rank}.json").read_text()) for rank in range(2)]
    for res in ranks:
        assert res["entries"] == 2 and res["why"] == "" and res["again"] == res["draws"]
    assert ranks[0]["draws"] != ranks[1]["draws"]  # each rank got its own states back, not rank 0's


# ---- whole runs under torchrun ----------------------------------------------------------------------
def torchrun(nproc, argv, **env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(nproc)] + argv
    return run_cmd(cmd, timeout=240, OMP_NUM_THREADS="1", ENGINE_BACKEND="builtin", **env)


def dvp_argv(root, out, descriptions, extra=()):
    return ["train.py", "--root", root, "--output-dir", str(out), "--trainer", "DVP_CLS", "--backbone", "test-tiny",
            "--seed", "1", "DATASET.NAME", "ToyColors", "DATASET.NUM_SHOTS", "16",
            "DATASET.DESCRIPTIONS_DIR", descriptions,
            "DATASET.DESCRIPTIONS_KEY", "toy", "USE_CUDA", "False", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TRAIN_X.SAMPLER", "RandomSampler", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
            "DATALOADER.TEST.BATCH_SIZE", "16", "OPTIM.NAME", "sgd", "OPTIM.LR", "10.0", "OPTIM.WEIGHT_DECAY", "0.0",
            "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.MAX_EPOCH", "3", "TRAIN.PRINT_FREQ", "1",
            "TRAINER.DVP_CLS.M", "4", "TRAINER.DVP_CLS.PRM_TOPK", "2", "TRAINER.DVP_CLS.V", "2",
            "TRAINER.DVP_CLS.KMEANS_N_INIT", "2", "TEST.PER_EPOCH", "True"] + list(extra)


@pytest.mark.slow
def test_dvp_two_processes_match_one(tmp_path):
    """DVP_CLS with the reference augmentation and a random sample order (both seeded per epoch and sample:
    DATALOADER.AUGMENT_SEED per_sample), 9 training images in global batches of 4: the last global batch
    has 1 image, so rank 1 runs a padding sample that must count for nothing."""
    import train
    from tests.toy_plugin import make_toy_root
    from tests.trainer_fixtures import write_toy_descriptions

    root = tmp_path / "data"
    make_toy_root(str(root), per_class=(2, 2, 2, 3), n_test=3)
    descriptions = write_toy_descriptions(tmp_path / "descriptions")
    one, two = tmp_path / "one", tmp_path / "two"
    train.run(train.build_parser().parse_args(dvp_argv(str(root), one, descriptions)[1:]))
    proc = torchrun(2, dvp_argv(str(root), two, descriptions), VR_PLUGINS="tests.toy_plugin")
    assert proc.returncode == 0, proc.stderr[-3000:]

    prm1, prm2 = (torch.load(d / "prm.pt", weights_only=True) for d in (one, two))
    assert int(prm2["counts"].sum()) == 9 * 2  # every training image counted once (top-2), padding never
    assert torch.equal(prm1["counts"], prm2["counts"]) and torch.equal(prm1["omega_blocks"], prm2["omega_blocks"])
    d1, d2 = (torch.load(d / "vr_model" / "model.pth.tar-3", weights_only=True)["state_dict"]["prompts.delta"]
              for d in (one, two))
    assert d1.abs().sum() > 0 and torch.allclose(d1, d2, atol=1e-4)
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert r2["accuracy"] == r1["accuracy"] and r2["per_epoch_test"] == r1["per_epoch_test"]
    assert r2["per_class"] == r1["per_class"] and r2["macro_f1"] == r1["macro_f1"]
    log = (two / "log.txt").read_text()
    assert "* total: 12" in log  # the whole test set, each image once
    assert proc.stdout.count("Finish training") == 1 and log.count("Finish training") == 1  # rank 0 only
    assert "epoch [3/3] batch [3/3]" in log  # 3 steps per epoch, as in the one-process run
