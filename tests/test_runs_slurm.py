"""The SLURM sweep's planning, without a cluster: packs, arrays within MaxArraySize, the parallel limit over
arrays, the GPU request, the cost estimate and an early signal (the real cluster: tests/test_slurm_sweep.py)."""
import argparse
import os

import pytest

from runs.jobs import Job, UsageError
from runs.slurm import Resources, chunks, parallel_limits, resource_lines
from runs.slurm_pack import estimate_seconds, pack
from runs.slurm_sweep import add_arguments, glue_values, resources


def test_arrays_stay_within_max_array_size():
    assert chunks(30, 11) == [(0, 11), (11, 11), (22, 8)]
    assert chunks(2970, 1001) == [(0, 1001), (1001, 1001), (2002, 968)]
    assert chunks(5, 1001) == [(0, 5)]


def test_max_parallel_holds_over_all_arrays():
    assert parallel_limits([11, 11, 8], None) == ([0, 0, 0], False)
    limits, chained = parallel_limits([11, 11, 8], 7)
    assert limits == [3, 2, 2] and sum(limits) == 7 and not chained
    assert parallel_limits([11, 11, 8], 2) == ([2, 2, 2], True)  # fewer slots than arrays: one after another


def test_short_runs_are_packed_up_to_the_target_and_long_ones_alone():
    costs = [100, 100, 100, 500, 5000, 50, 50]
    jobs = list(range(len(costs)))
    assert pack(jobs, 300, estimate=lambda i: costs[i]) == [[0, 1, 2], [3], [4], [5, 6]]
    assert pack(jobs, 0, estimate=lambda i: costs[i]) == [[i] for i in jobs]


def test_estimate_follows_the_declared_cost_class_shots_and_epochs():
    zero_shot = estimate_seconds(Job("zsclip", "dtd", 0, "vit_b16", 1))
    one_shot = estimate_seconds(Job("coop", "dtd", 1, "vit_b16", 1))
    sixteen = estimate_seconds(Job("coop", "dtd", 16, "vit_b16", 1))
    short = estimate_seconds(Job("coop", "dtd", 16, "vit_b16", 1, ("OPTIM.MAX_EPOCH", "10")))
    rn50 = estimate_seconds(Job("coop", "dtd", 16, "rn50", 1))
    features = estimate_seconds(Job("linearprobe", "dtd", 16, "vit_b16", 1))
    assert zero_shot < one_shot < sixteen and short < sixteen and rn50 < sixteen and features < sixteen


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(glue_values(argv))


def test_gpu_request_in_a_form_the_cluster_takes():
    assert "--gres=gpu:1" in resource_lines(resources(parse(), {"GresTypes": "gpu"}))
    assert not any("gpu" in line for line in resource_lines(resources(parse("--gpus-per-task", "0"), {})))
    with pytest.raises(UsageError, match=r"declares no gpu GRES \(GresTypes=\(null\)\).*--gpus-per-task 0"):
        resources(parse(), {"GresTypes": "(null)"})
    own = resources(parse("--slurm-args", "--gpus=1 --qos=long"), {"GresTypes": "(null)"})
    assert resource_lines(own)[-2:] == ["--gpus=1", "--qos=long"] and "--gres=gpu:1" not in resource_lines(own)
    lines = resource_lines(Resources(2, "8", "32G", "4:00:00", "gpu", "", 120, None))
    assert lines == ["--requeue", "--open-mode=append", "--signal=B:USR1@120", "--gres=gpu:2", "--cpus-per-task=8",
                     "--mem=32G", "--time=4:00:00", "--partition=gpu"]


def one_run_pack(tmp_path, monkeypatch):
    """A submission folder of one pack (one run), a fake scontrol that records its arguments, SLURM_JOB_ID 77, and
    PYTHON/DATA/OUTPUT for the runner, whose train.py interpreter leaves tmp_path/started if a run starts."""
    from runs.slurm import job_line, parse_job_line

    folder = tmp_path / "sweeps" / "s" / "slurm" / "001"
    folder.mkdir(parents=True)
    job = parse_job_line("\t".join(["ar", "dtd", "1", "vit_b16", "1"]))
    (folder / "jobs.txt").write_text(job_line(job) + "\n")
    (folder / "packs.txt").write_text("0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.txt\n')
    (bin_dir / "scontrol").chmod(0o755)
    never = tmp_path / "train.sh"
    never.write_text(f"#!/bin/sh\ntouch {tmp_path}/started\n")
    never.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    for key, value in (("PYTHON", never), ("DATA", tmp_path / "data"), ("OUTPUT", tmp_path / "out")):
        monkeypatch.setenv(key, str(value))
    return folder


def test_a_signal_that_came_while_python_started_requeues_the_task_before_any_run(tmp_path, monkeypatch, capsys):
    """SLURM's pre-limit SIGUSR1 can reach a task before its handler is set (scripts/run_one.py keeps it):
    the task starts no run and requeues itself, as it does for a signal during a run."""
    import signal

    from runs.slurm_task import run_pack

    folder = one_run_pack(tmp_path, monkeypatch)
    assert run_pack(str(folder), 0, early_signals=[signal.SIGUSR1]) == 0
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "77"]
    assert not (tmp_path / "started").exists()
    assert "requeued task" in capsys.readouterr().out


def test_the_runner_holds_a_task_signal_from_its_first_lines_and_hands_it_on(tmp_path, monkeypatch):
    """scripts/run_one.py, started as a SLURM task (``run_one.py task FOLDER INDEX``), sets its handlers before
    its other imports; a signal that comes then is kept and the task requeues without starting a run."""
    import signal
    import sys

    from tests.script_helpers import load_script

    folder = one_run_pack(tmp_path, monkeypatch)
    monkeypatch.setattr(sys, "argv", ["run_one.py", "task", str(folder), "0"])
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)}
    try:
        run_one = load_script("run_one")
        assert callable(signal.getsignal(signal.SIGUSR1))  # set by its first lines (else the signal would kill)
        os.kill(os.getpid(), signal.SIGUSR1)  # before the task starts its runs
        assert run_one.EARLY_SIGNALS == [signal.SIGUSR1]
        assert run_one.main(["task", str(folder), "0"]) == 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "77"]
    assert not (tmp_path / "started").exists()
