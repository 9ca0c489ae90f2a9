"""Where a sweep stands: done / running / failed / pending per method and dataset (``sweep.sh --status``).

Done is the done rule (runs/layout.py check_done through runs/jobs.done), whatever any log says. The
others come from the run's state file (written by its SLURM task, runs/slurm_task.py) checked against the
queue: a run its task says is running counts as running only while squeue still lists that task
running (when squeue can be asked); a task that ended under it (time limit, node failure, scancel)
leaves it failed, with sacct's state of the task where accounting is kept.
"""
from __future__ import annotations

import glob
import os.path as osp
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .jobs import done
from .slurm import parse_job_line, read_lines
from .slurm_query import accounting_states, queue_states
from .slurm_task import read_state

if TYPE_CHECKING:
    from .jobs import Job, Settings

STATES = ("done", "running", "failed", "pending")


def sweep_jobs(sweep_dir: str) -> list[Job] | None:
    """Every run of the sweep, from <sweep>/jobs.txt (job line + its run folder)."""
    path = osp.join(sweep_dir, "jobs.txt")
    if not osp.isfile(path):
        return None
    return [parse_job_line(line.rsplit("\t", 1)[0]) for line in read_lines(path)]


def submitted_arrays(sweep_dir: str) -> list[str]:
    ids = []
    for path in sorted(glob.glob(osp.join(sweep_dir, "slurm", "*", "submitted.txt"))):
        ids += [line.split()[0] for line in read_lines(path)]
    return ids


def last_error(log: str) -> str:
    """The last line of a log that says ERROR (else its last line; '' without a log)."""
    try:
        with open(log, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if "ERROR" in line]
    return (errors or lines or [""])[-1]


def classify(job: Job, settings: Settings, sweep_dir: str, queue: dict[str, str] | None,
             accounting: dict[str, str]) -> tuple[str, str, str]:
    """(state, detail, log) of one run."""
    verdict = done(job, settings)
    if verdict.done:
        return "done", verdict.reason, ""
    state = read_state(sweep_dir, job, settings)
    status, task, log = state.get("status"), state.get("task", ""), state.get("log", "")
    if status == "running":
        if queue is None or queue.get(task) == "RUNNING":
            return "running", f"task {task}", log
        if queue.get(task):  # requeued, waiting to start again
            return "pending", f"task {task} {queue[task].lower()}", log
        how = accounting.get(task) or "ended"
        return "failed", f"its task {task} ended while the run was running ({how})", log
    if status == "failed":
        return "failed", state.get("detail", ""), log
    return "pending", verdict.reason, log


def sweep_status(sweep_dir: str, settings: Settings,
                 jobs: Sequence[Job] | None = None) -> list[tuple[Job, str, str, str]]:
    """[(job, state, detail, log)] of every run of the sweep."""
    jobs = jobs if jobs is not None else sweep_jobs(sweep_dir) or []
    arrays = submitted_arrays(sweep_dir)
    queue = queue_states(arrays)
    accounting = accounting_states(arrays) if arrays else {}
    return [(job, *classify(job, settings, sweep_dir, queue, accounting)) for job in jobs]


def report(rows: Sequence[tuple[Job, str, str, str]], name: str, queue_known: bool = True) -> str:
    """The --status text: totals, one line per method and dataset, and each failed run with its log."""
    total = Counter(state for _, state, _, _ in rows)
    lines = [f"sweep {name}: {len(rows)} runs: " + " / ".join(f"{s} {total[s]}" for s in STATES)]
    if not queue_known:
        lines.append("  (squeue not available: 'running' is what the runs' tasks last reported)")
    groups = {}
    for job, state, _, _ in rows:
        groups.setdefault((job.method, job.dataset), Counter())[state] += 1
    width = max([len(f"{m} {d}") for m, d in groups] + [16])
    lines.append(f"  {'method dataset':<{width}}  " + "  ".join(f"{s:>7}" for s in STATES))
    for (method, dataset), counts in groups.items():
        lines.append(f"  {method + ' ' + dataset:<{width}}  " + "  ".join(f"{counts[s]:>7}" for s in STATES))
    failed = [(job, detail, log) for job, state, detail, log in rows if state == "failed"]
    if failed:
        lines.append("failed runs (sweep.sh ... --rerun-failed submits them again):")
        for job, detail, log in failed:
            detail = detail.replace(f"; log: {log}", "") if log else detail
            lines.append(f"  {job.method} {job.dataset} {job.shots} shots seed {job.seed}: {detail}")
            if log:
                lines.append(f"    log: {log}")
                error = last_error(log)
                if error:
                    lines.append(f"    last: {error}")
    return "\n".join(lines)
