"""sweep.sh --mode slurm against a REAL single-node SLURM (tests/slurm_cluster.py; skipped without one):
arrays split within MaxArraySize, short runs packed, a failed run reported and rerun, --status during and
after, and a run stopped by SIGUSR1 (the signal before the time limit) requeued and resumed bit-identical."""
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO
from tests.fake_workspace import SCRIPTS, FakeWorkspace
from tests.slurm_cluster import MAX_ARRAY_SIZE, SlurmCluster, missing

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    # a short folder: the munge socket path must fit in a unix socket name
    root = tmp_path_factory.mktemp("slurm")
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def sweep(env, cwd, *args):
    return subprocess.run(["/bin/bash", str(SCRIPTS / "sweep.sh"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def counts(status_out):
    """{'done': n, 'running': n, 'failed': n, 'pending': n} of a --status report's first line."""
    return {k: int(v) for v, k in ((m.group(2), m.group(1)) for m in
                                   re.finditer(r"(done|running|failed|pending) (\d+)", status_out.splitlines()[0]))}


def fake_ws(tmp_path, cluster, **env):
    ws = FakeWorkspace(tmp_path, ("dtd", "eurosat"), ("AR", "VP", "ZeroshotCLIP"),
                       path=os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin", "/usr/sbin"]),
                       SLURM_CONF=cluster.env["SLURM_CONF"], **env)
    return ws


def test_sweep_larger_than_max_array_size_runs_every_run_once(cluster, tmp_path):
    ws = fake_ws(tmp_path, cluster)
    env = dict(ws.env, FAKE_SLEEP_IN="eurosat/VP", FAKE_SLEEP="3")
    args = ["--methods", "ar vp zsclip", "--datasets", "dtd eurosat", "--shots", "1", "--seeds", "1 2 3 4 5",
            "--mode", "slurm", "--name", "big", "--gpus-per-task", "0", "--pack-minutes", "0",
            "--max-parallel", "6"]
    res = sweep(env, tmp_path, *args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "30 unfinished runs" in res.stdout and f"at most {MAX_ARRAY_SIZE} tasks" in res.stdout
    assert len(re.findall(r"submitted array job \d+", res.stdout)) == 3  # 11 + 11 + 8

    during = sweep(env, tmp_path, "--status", "--name", "big")
    assert sum(counts(during.stdout).values()) == 30 and counts(during.stdout)["done"] < 30, during.stdout
    deadline = time.time() + 90
    while time.time() < deadline:  # the slow eurosat VP runs show as running
        during = sweep(env, tmp_path, "--status", "--name", "big")
        if re.search(r"vp eurosat +\d+ +[1-4] ", during.stdout):
            break
        time.sleep(1)
    assert re.search(r"vp eurosat +\d+ +[1-4] ", during.stdout), during.stdout
    assert during.returncode == 0 and counts(during.stdout)["running"] >= 1, during.stdout

    cluster.wait_idle(150)
    launched = [r["argv"][r["argv"].index("--output-dir") + 1] for r in ws.launched()]
    assert len(launched) == 30 and len(set(launched)) == 30  # every run once
    after = sweep(env, tmp_path, "--status", "--name", "big")
    assert after.returncode == 0 and counts(after.stdout) == {"done": 30, "running": 0, "failed": 0, "pending": 0}
    assert re.search(r"ar dtd +5 +0 +0 +0", after.stdout), after.stdout
    again = sweep(env, tmp_path, *args)
    assert "nothing to submit: every run is finished" in again.stdout


def test_packed_runs_a_failure_is_reported_and_rerun(cluster, tmp_path):
    ws = fake_ws(tmp_path, cluster)
    args = ["--methods", "zsclip ar", "--datasets", "dtd", "--shots", "1", "--seeds", "1 2 3 4 5 6",
            "--mode", "slurm", "--name", "packed", "--gpus-per-task", "0", "--pack-minutes", "10"]
    res = sweep(dict(ws.env, FAKE_FAIL="AR/vit_b16_1shots/seed3"), tmp_path, *args)
    assert res.returncode == 0, res.stdout + res.stderr
    tasks = int(re.search(r"-> (\d+) array tasks", res.stdout).group(1))
    assert 1 < tasks < 12  # 12 runs of a few estimated minutes each, packed by 10 minutes
    cluster.wait_idle(120)
    assert len(ws.launched()) == 12  # the failure did not stop the rest of its pack

    status = sweep(ws.env, tmp_path, "--status", "--name", "packed")
    assert status.returncode == 1
    assert counts(status.stdout) == {"done": 11, "running": 0, "failed": 1, "pending": 0}, status.stdout
    log = tmp_path / "out/sweeps/packed/logs/dtd_AR_vit_b16_1shots_seed3.log"
    assert "ar dtd 1 shots seed 3: exit 3" in status.stdout and f"    log: {log}\n" in status.stdout
    assert "last: ERROR: fake failure (FAKE_FAIL=AR/vit_b16_1shots/seed3)" in status.stdout

    rerun = sweep(ws.env, tmp_path, "--rerun-failed", "--name", "packed", "--gpus-per-task", "0")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 unfinished runs" in rerun.stdout
    cluster.wait_idle(60)
    assert len(ws.launched()) == 13
    final = sweep(ws.env, tmp_path, "--status", "--name", "packed")
    assert final.returncode == 0 and counts(final.stdout)["done"] == 12, final.stdout


def test_real_time_limit_signals_the_task_which_requeues_and_finishes(cluster, tmp_path):
    """--time 1 (SLURM's unit: minutes) and the signal 50 s before it: SLURM itself sends SIGUSR1 to the
    task whose first attempt hangs; the task stops it, requeues itself, and the second attempt finishes."""
    ws = fake_ws(tmp_path, cluster)
    hang_once = ws.write("hang_once", f"#!/bin/bash\n[ -n \"${{SLURM_RESTART_COUNT:-}}\" ] || exec sleep 300\n"
                                      f"exec {ws.fake} \"$@\"\n")
    hang_once.chmod(0o755)
    res = sweep(dict(ws.env, PYTHON=str(hang_once)), tmp_path, "--methods", "vp", "--datasets", "dtd", "--shots", "1",
                "--seeds", "1", "--mode", "slurm", "--name", "limit", "--gpus-per-task", "0", "--time", "1",
                "--signal-seconds", "50")
    assert res.returncode == 0, res.stdout + res.stderr
    array = re.search(r"submitted array job (\d+)", res.stdout).group(1)
    cluster.wait_idle(150)
    task_log = (tmp_path / "out/sweeps/limit/logs" / f"slurm-{array}_0.out").read_text()
    assert "signal 10" in task_log and "requeued task" in task_log and "TIME LIMIT" not in task_log, task_log
    assert (tmp_path / "out/dtd/VP/vit_b16_1shots/seed1/results.json").exists()
    job = subprocess.run(["scontrol", "show", "job", f"{array}_0"], env=cluster.env, capture_output=True, text=True)
    assert "Restarts=1" in job.stdout and "COMPLETED" in job.stdout, job.stdout


# ---- a real train.py (test-tiny, ToyColors) stopped by the pre-limit signal, requeued, resumed ----------

TOY_OPTS = ("MODEL.BACKBONE.NAME test-tiny DATALOADER.NUM_WORKERS 0 DATALOADER.TRAIN_X.BATCH_SIZE 2 "
            "OPTIM.MAX_EPOCH 3 TRAIN.PRINT_FREQ 100 OPTIM.WARMUP_EPOCH 0")


def toy_workspace(tmp_path):
    """The repository's code and trainer configs (links) plus a ToyColors dataset config."""
    ws = tmp_path / "ws"
    (ws / "configs" / "datasets").mkdir(parents=True)
    for entry in os.listdir(REPO):
        if entry not in ("configs", ".git") and not entry.startswith("."):
            (ws / entry).symlink_to(os.path.join(REPO, entry))
    (ws / "configs" / "trainers").symlink_to(os.path.join(REPO, "configs", "trainers"))
    (ws / "configs" / "datasets" / "toy.yaml").write_text("DATASET:\n  NAME: ToyColors\nUSE_CUDA: False\n")
    return ws


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def flat(state, prefix=""):
    """{dotted key: tensor} of a nested state dict."""
    out = {}
    for key, value in state.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


TOY_ARGS = ["--methods", "ar", "--datasets", "toy", "--shots", "2", "--seeds", "1", "--opts", TOY_OPTS]
TOY_RUN = "toy/AR/vit_b16_2shots/seed1"


class Reference:
    """The toy run uninterrupted and in one process, started at once in the background (sweep.sh, seq)."""

    def __init__(self, root, cluster, toy_root):
        self.ws = toy_workspace(root)
        self.env = dict(cluster.env, PYTHON=sys.executable, DATA=toy_root, VR_PLUGINS="tests.toy_plugin",
                        OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", RUNNER_PYTHON=sys.executable,
                        PYTHONUNBUFFERED="1")
        self.out = root / "whole"
        self.proc = subprocess.Popen(["/bin/bash", str(SCRIPTS / "sweep.sh"), *TOY_ARGS], cwd=self.ws, text=True,
                                     env=dict(self.env, OUTPUT=str(self.out)), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)

    def run_dir(self):
        assert self.proc.wait(timeout=180) == 0, self.proc.stdout.read()
        return self.out / TOY_RUN


@pytest.fixture(scope="module")
def reference(cluster, tmp_path_factory, toy_root):
    ref = Reference(tmp_path_factory.mktemp("toy"), cluster, toy_root)
    yield ref
    if ref.proc.poll() is None:
        ref.proc.kill()
        ref.proc.wait()


def test_signal_before_the_limit_requeues_and_resumes_bit_identical(cluster, reference, tmp_path):
    ws, env, args = reference.ws, reference.env, TOY_ARGS

    out = tmp_path / "out"
    # the first attempt pauses after its epoch-1 checkpoint (which epoch 2 would prune): the signal below
    # reaches a run in the middle of training however slowly the machine polls
    paused = dict(env, OUTPUT=str(out), TOY_PAUSE_AT_EPOCH="1", TOY_PAUSE_SECONDS="60")
    res = sweep(paused, ws, *args, "--mode", "slurm", "--name", "rq", "--gpus-per-task", "0",
                "--time", "10", "--signal-seconds", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    array = re.search(r"submitted array job (\d+)", res.stdout).group(1)
    run = out / TOY_RUN
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "vr_model" / "model.pth.tar-1").exists():
        time.sleep(0.3)
    run_log = out / "sweeps/rq/logs/toy_AR_vit_b16_2shots_seed1.log"
    assert (run / "vr_model" / "model.pth.tar-1").exists(), (
        cluster.log_tail() + (run_log.read_text()[-3000:] if run_log.exists() else "(no run log)"))
    # what SLURM sends --signal-seconds before the limit (B: to the batch shell), sent now
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{array}_0"], env=cluster.env, check=True)
    cluster.wait_idle(90)

    task_log = (out / "sweeps/rq/logs" / f"slurm-{array}_0.out").read_text()
    assert "requeued task" in task_log, task_log
    run_log = run_log.read_text()
    assert "Previous epoch" in run_log and "epoch [3/3]" in run_log, run_log[-2000:]
    job = subprocess.run(["scontrol", "show", "job", f"{array}_0"], env=cluster.env, capture_output=True, text=True)
    assert "Restarts=1" in job.stdout and "COMPLETED" in job.stdout, job.stdout

    whole = reference.run_dir()
    a, b = (flat(torch.load(d / "vr_model" / "model.pth.tar-3", weights_only=True)["state_dict"])
            for d in (whole, run))
    assert a.keys() == b.keys() and all(same(a[k], b[k]) for k in a), [k for k in a if not same(a[k], b[k])]
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (whole, run))
    assert ra["accuracy"] == rb["accuracy"]
    status = sweep(dict(env, OUTPUT=str(out)), ws, "--status", "--name", "rq")
    assert counts(status.stdout) == {"done": 1, "running": 0, "failed": 0, "pending": 0}, status.stdout


def test_one_run_over_the_tasks_of_one_allocation_matches_one_process(cluster, reference, tmp_path):
    """scripts/srun_train.sh: srun's two tasks are the two ranks of one run (gloo on CPU, engine/distributed.py);
    the global batch of 2 is split over them, and the run ends as the one-process run does."""
    from runs.jobs import Settings, command
    from runs.slurm import parse_job_line

    out = tmp_path / "two"
    job = parse_job_line("\t".join(["ar", "toy", "2", "vit_b16", "1", *TOY_OPTS.split()]))
    argv = command(job, Settings(dict(reference.env, OUTPUT=str(out))))[1:]  # train.py ... as the sweep runs it
    wrap = f"srun bash scripts/srun_train.sh {shlex.join(argv)}"
    submitted = subprocess.run(["sbatch", "--parsable", "--ntasks=2", "--cpus-per-task=1", f"--output={tmp_path}/o.txt",
                                "--wrap", wrap], cwd=reference.ws, env=reference.env, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    cluster.wait_idle(150)
    log = (out / TOY_RUN / "log.txt").read_text()
    assert "epoch [3/3]" in log and log.count("Finish training") == 1, (tmp_path / "o.txt").read_text()[-3000:]
    one, two = reference.run_dir(), out / TOY_RUN
    a, b = (flat(torch.load(d / "vr_model" / "model.pth.tar-3", weights_only=True)["state_dict"]) for d in (one, two))
    tensors = [k for k in a if isinstance(a[k], torch.Tensor) and a[k].is_floating_point()]
    assert tensors and all(torch.allclose(a[k], b[k], atol=1e-4) for k in tensors)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert ra["accuracy"] == rb["accuracy"]
