"""Run a list of jobs one after another or one per GPU, with progress, summary and clean interrupts."""
import os.path as osp
import signal
import sys
import threading

from .jobs import done, trainer_of
from .launcher import Outcome, Runner
from .progress import Progress


def log_name(job):
    return f"{job.dataset}_{trainer_of(job.method)}_{job.cfg}_{job.shots}shots_seed{job.seed}.log"


def _unfinished(jobs, verdicts, progress):
    """(job, why it is not done) for each job in order; finished ones are recorded as skipped."""
    for job in jobs:
        verdict = verdicts[job]
        if verdict.done:
            progress.record(job, Outcome("skipped", verdict.reason))
        else:
            yield job, verdict.reason


def run_sequential(jobs, runner, progress, verdicts, log_dir=None):
    for job, why in _unfinished(jobs, verdicts, progress):
        progress.say(job, f"running ({why})")
        log_path = osp.join(log_dir, log_name(job)) if log_dir else None
        progress.record(job, runner.run(job, log_path=log_path))


def run_parallel(jobs, runner, progress, verdicts, gpus, log_dir):
    pending = list(_unfinished(jobs, verdicts, progress))
    queue_lock = threading.Lock()

    def worker(gpu):
        while not runner.stopping:
            with queue_lock:
                if not pending:
                    return
                job, why = pending.pop(0)
            log_path = osp.join(log_dir, log_name(job))
            progress.say(job, f"running on GPU {gpu} ({why}; log: {log_path})")
            progress.record(job, runner.run(job, gpu=gpu, log_path=log_path))

    threads = [threading.Thread(target=worker, args=(gpu,), daemon=True) for gpu in gpus]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:  # stop the children, then let every worker record its outcome
        runner.stop()
        for t in threads:
            t.join()
        raise


def run_jobs(jobs, settings, parallel_gpus=None, log_dir=None, show_cfg=False, verdicts=None):
    """Run (or skip) every job, print progress and the summary.

    ``verdicts``: {job: layout.Verdict} of the jobs' folders when the caller has them (the sweep counts the
    finished runs first), so that the done check runs once per job before its launch.
    Returns (exit code, summary text): 0 all done or skipped, 1 some failed, 130 interrupted.
    """
    if verdicts is None:
        verdicts = {job: done(job, settings) for job in jobs}
    runner = Runner(settings)
    progress = Progress(jobs, settings, show_cfg)

    def on_stop(signum, frame):
        runner.stopping = True  # at once, so that no worker starts another run meanwhile
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    interrupted = False
    try:
        if parallel_gpus:
            run_parallel(jobs, runner, progress, verdicts, parallel_gpus, log_dir)
        else:
            run_sequential(jobs, runner, progress, verdicts, log_dir)
    except KeyboardInterrupt:
        interrupted = True
        runner.stop()
        print("interrupted: running jobs were stopped; run the same command again to resume",
              file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    text = progress.summary()
    print(text, flush=True)
    return (130 if interrupted else 0 if progress.ok() else 1), text
