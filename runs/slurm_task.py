"""One SLURM array task: the runs of its pack, one after another, and what to do when time runs out.

Each run has its own log (``<sweep>/logs/<run>.log``) and its own state file
(``<sweep>/state/<run key>.json``: running / done / failed / interrupted / requeued, the task, the log),
which ``sweep.sh --status`` reads. A failed run does not stop the others. On SIGUSR1 (the script asks
SLURM for it ``--signal=B:USR1@<seconds>`` before the time limit) the running train.py is stopped, its
run keeps the checkpoint of its last finished epoch, and the task requeues itself (``scontrol requeue``):
when it starts again, the finished runs of its pack are skipped and the stopped one resumes from its
checkpoint (train.py resumes exactly). SIGTERM (scancel, preemption) stops the run the same way without
requeueing (a preempting cluster with PreemptMode=REQUEUE requeues the task itself).
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.io import atomic_write_text

from .jobs import Settings, done, label, run_dir, validate
from .launcher import Runner
from .schedule import log_name
from .slurm import read_pack

if TYPE_CHECKING:
    from .jobs import Job

STOP_GRACE_S = 30  # train.py gets SIGTERM, then SIGKILL after this many seconds


def sweep_of(folder: str) -> str:
    """The sweep folder of a submission folder <sweep>/slurm/<NNN>."""
    return osp.dirname(osp.dirname(osp.abspath(folder)))


def state_path(sweep_dir: str, job: Job, settings: Settings) -> str:
    key = hashlib.sha1(osp.normpath(run_dir(job, settings)).encode()).hexdigest()[:16]
    return osp.join(sweep_dir, "state", f"{key}.json")


def read_state(sweep_dir: str, job: Job, settings: Settings) -> dict[str, Any]:
    try:
        with open(state_path(sweep_dir, job, settings)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_state(sweep_dir: str, job: Job, settings: Settings, status: str, detail: str = "", log: str = "") -> None:
    path = state_path(sweep_dir, job, settings)
    os.makedirs(osp.dirname(path), exist_ok=True)
    record = {"status": status, "detail": detail, "log": log, "task": task_id(), "time": time.time(),
              "run": run_dir(job, settings)}
    atomic_write_text(path, json.dumps(record) + "\n")


def task_id() -> str:
    """<array job id>_<task id> of this task ('' outside SLURM)."""
    job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else ""


def requeue() -> bool:
    """Put this task back in the queue; False (with the reason printed) when SLURM refuses."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        print("ERROR: no SLURM_JOB_ID: not a SLURM task, nothing to requeue; run the sweep again to resume",
              file=sys.stderr)
        return False
    done_ = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if done_.returncode != 0:
        print(f"ERROR: scontrol requeue {job} failed ({(done_.stdout + done_.stderr).strip()}); submit the "
              "sweep again to resume its unfinished runs", file=sys.stderr)
        return False
    print(f"requeued task {task_id() or job}: it resumes from the last checkpoint when it starts again",
          flush=True)
    return True


def run_pack(folder: str, index: int, settings: Settings | None = None, early_signals: Sequence[int] = ()) -> int:
    """Run pack ``index`` of a submission folder; the exit code of the task. ``early_signals``: signals that
    came while Python started (scripts/run_one.py keeps them): the task stops and requeues before any run."""
    settings = settings or Settings()
    jobs = read_pack(folder, index)
    validate(jobs)
    sweep_dir = sweep_of(folder)
    runner = Runner(settings)
    caught = []

    def on_signal(signum: int, frame: object) -> None:
        caught.append(signum)
        runner.stopping = True  # at once, so no further run starts
        raise KeyboardInterrupt

    previous, failed, current = {}, 0, None
    try:
        for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):  # inside the try: a signal now is handled too
            previous[sig] = signal.signal(sig, on_signal)
        if early_signals:
            caught.extend(early_signals)
            raise KeyboardInterrupt
        for n, job in enumerate(jobs, 1):
            head = f"[{n}/{len(jobs)}] {label(job, show_cfg=True)} ..."
            verdict = done(job, settings)
            if verdict.done:
                print(f"{head} skip ({verdict.reason})", flush=True)
                continue
            log = osp.join(sweep_dir, "logs", log_name(job))
            current = job
            write_state(sweep_dir, job, settings, "running", verdict.reason, log)
            print(f"{head} running ({verdict.reason}; log: {log})", flush=True)
            outcome = runner.run(job, log_path=log)
            current = None
            if outcome.status != "busy":
                write_state(sweep_dir, job, settings, outcome.status, outcome.detail, log)
            print(f"{head} {outcome.status} ({outcome.detail})", flush=True)
            failed += outcome.status == "failed"
    except KeyboardInterrupt:
        runner.stop(STOP_GRACE_S)
        usr1 = signal.SIGUSR1 in caught
        if current is not None:
            write_state(sweep_dir, current, settings, "requeued" if usr1 else "interrupted",
                        "stopped before the time limit" if usr1 else "stopped (SIGTERM/SIGINT)",
                        osp.join(sweep_dir, "logs", log_name(current)))
        stopped = "the running train.py was stopped" if current is not None else "no run was running"
        print(f"signal {caught[0] if caught else '?'}: {stopped}; the task's runs resume from their last "
              "checkpoints", flush=True)
        if usr1:
            return 0 if requeue() else 1
        return 143
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
