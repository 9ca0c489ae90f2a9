"""Start train.py for one job under a per-run lock, and stop the running ones on an interrupt."""
import contextlib
import os
import os.path as osp
import signal
import subprocess
import threading
import time
from collections import namedtuple

from engine.io import file_lock

from .jobs import command, done, run_dir

LOCK = ".run.lock"
# status: done failed skipped busy interrupted
Outcome = namedtuple("Outcome", "status detail")
# A child that died of Ctrl-C or SIGTERM was stopped, not broken (Python exits by SIGINT on Ctrl-C).
STOP_SIGNALS = (-signal.SIGINT, -signal.SIGTERM)


@contextlib.contextmanager
def run_lock(folder):
    """Hold the per-run lock of ``folder`` (its LOCK file): yields the open lock file, or None when
    another process holds it. A train.py started with ``pass_fds=(lock_file.fileno(),)`` keeps the
    run locked while it lives, even if its launcher is killed with SIGKILL."""
    os.makedirs(folder, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            lock_file = stack.enter_context(file_lock(osp.join(folder, LOCK), blocking=False))
        except BlockingIOError:
            lock_file = None
        yield lock_file


class Runner:
    """Starts train.py for jobs; remembers the child processes so an interrupt can stop them."""

    def __init__(self, settings):
        self.settings = settings
        self.children = set()
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, job, gpu=None, log_path=None):
        """Launch a job found unfinished (runs/schedule.py), unless another process holds its folder or
        has finished it since: the done check under the run lock is the one that counts."""
        folder = run_dir(job, self.settings)
        with run_lock(folder) as lock_file:
            if lock_file is None:
                return Outcome("busy", "another process is running it")
            verdict = done(job, self.settings)
            if verdict.done:  # finished by another process since the sweep looked
                return Outcome("skipped", verdict.reason)
            return self._launch(job, folder, gpu, log_path, lock_file)

    def _launch(self, job, folder, gpu, log_path, lock_file):
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        out = None
        if log_path:
            os.makedirs(osp.dirname(log_path), exist_ok=True)
            out = open(log_path, "a")  # noqa: SIM115  (the child's log, closed when the child ends)
        start = time.time()
        try:
            with self.lock:
                if self.stopping:
                    return Outcome("interrupted", "sweep interrupted before start")
                try:
                    # The child inherits the locked descriptor: the run stays locked while
                    # train.py lives, even if this runner is killed with SIGKILL.
                    proc = subprocess.Popen(command(job, self.settings), env=env, stdout=out,
                                            stderr=subprocess.STDOUT if out else None,
                                            pass_fds=(lock_file.fileno(),))
                except OSError as exc:
                    return Outcome("failed", f"cannot start {self.settings.python_raw!r}: {exc}")
                self.children.add(proc)
            rc = proc.wait()
            with self.lock:
                self.children.discard(proc)
        finally:
            if out:
                out.close()
        took = time.time() - start
        where = f"; log: {log_path}" if log_path else ""
        if rc in STOP_SIGNALS or (rc != 0 and self.stopping):
            return Outcome("interrupted", f"stopped after {took:.0f} s; run again to resume{where}")
        if rc != 0:
            return Outcome("failed", f"exit {rc} after {took:.0f} s{where}")
        verdict = done(job, self.settings)
        if not verdict.done:
            return Outcome("failed", f"exit 0 but {verdict.reason} in {folder}{where}")
        return Outcome("done", f"{took:.1f} s")

    def stop(self, grace_s=10.0):
        """Terminate running children and reap them (kill after grace_s), so none outlives us."""
        with self.lock:
            self.stopping = True
            children = list(self.children)
        for proc in children:
            if proc.poll() is None:
                proc.terminate()
        for proc in children:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
