"""``sweep.sh --mode slurm``: options, packing, splitting into arrays, submitting, --status, --rerun-failed.

Stdlib only and never needed for the local modes (seq, gpus)."""
from __future__ import annotations

import os.path as osp
import shutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.io import atomic_write_text

from .jobs import UsageError
from .slurm import Resources, resource_lines, write_submission
from .slurm_pack import estimate_seconds, pack
from .slurm_query import DEFAULT_MAX_ARRAY_SIZE, cluster_config, gres_types, max_array_size, submit
from .slurm_status import report, submitted_arrays, sweep_status
from .slurm_task import write_state

if TYPE_CHECKING:
    import argparse

    from .jobs import Job, Settings

DEFAULT_SIGNAL_S = 300
DEFAULT_PACK_MINUTES = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("slurm (--mode slurm)")
    group.add_argument("--gpus-per-task", type=int, default=1,
                       help="GPUs per array task (default 1, asked as --gres=gpu:N; 0: a CPU-only sweep)")
    group.add_argument("--cpus-per-task", default="", help="sbatch --cpus-per-task")
    group.add_argument("--mem", default="", help="sbatch --mem, e.g. 32G")
    group.add_argument("--time", default="", help="task time limit, e.g. 4:00:00 (default: the partition's)")
    group.add_argument("--partition", default="", help="sbatch --partition")
    group.add_argument("--slurm-args", default="",
                       help="more sbatch options, e.g. '--account=lab --qos=long' (a --gres/--gpus here "
                            "replaces the default GPU request)")
    group.add_argument("--max-parallel", type=int, help="at most this many tasks at once over all arrays")
    group.add_argument("--max-array-size", type=int,
                       help=f"tasks per array job (default: the cluster's MaxArraySize, else {DEFAULT_MAX_ARRAY_SIZE})")
    group.add_argument("--pack-minutes", type=float, default=DEFAULT_PACK_MINUTES,
                       help="pack runs estimated shorter than this into one task, up to this many minutes "
                            f"(default {DEFAULT_PACK_MINUTES}; 0: one run per task)")
    group.add_argument("--signal-seconds", type=int, default=DEFAULT_SIGNAL_S,
                       help="SIGUSR1 this many seconds before the time limit: the task stops its run "
                            f"and requeues itself (default {DEFAULT_SIGNAL_S})")
    group.add_argument("--status", action="store_true",
                       help="print done / running / failed / pending per method and dataset, and each "
                            "failed run's log and last ERROR line; submits nothing")
    group.add_argument("--rerun-failed", action="store_true", help="submit only the runs --status reports failed")


def glue_values(argv: Sequence[str]) -> list[str]:
    """['--slurm-args', '--partition=gpu ...'] -> ['--slurm-args=--partition=gpu ...']: argparse would
    take a value that looks like one of the sweep's own options (--partition=...) for that option."""
    out, argv = [], list(argv)
    while argv:
        word = argv.pop(0)
        out.append(f"{word}={argv.pop(0)}" if word == "--slurm-args" and argv else word)
    return out


def check_arguments(args: argparse.Namespace) -> None:
    for key in ("max_parallel", "max_array_size"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    if args.gpus_per_task < 0 or args.signal_seconds < 0 or args.pack_minutes < 0:
        raise UsageError("--gpus-per-task, --signal-seconds and --pack-minutes must be >= 0")


def resources(args: argparse.Namespace, config: dict[str, str]) -> Resources:
    res = Resources(args.gpus_per_task, args.cpus_per_task, args.mem, args.time, args.partition,
                    args.slurm_args, args.signal_seconds, args.max_parallel)
    types = gres_types(config)
    if res.gpus and types is not None and "gpu" not in types and "--gres=gpu" in " ".join(resource_lines(res)):
        raise UsageError(f"this cluster declares no gpu GRES (GresTypes={config.get('GresTypes')}), so sbatch "
                         "refuses --gres=gpu:N: use --gpus-per-task 0 for a CPU-only sweep, or give the GPU "
                         "request your cluster takes in --slurm-args (e.g. '--gpus=1' or '--constraint=a100')")
    return res


def submit_slurm(todo: Sequence[Job], settings: Settings, sweep_dir: str, name: str, args: argparse.Namespace,
                 runner_script: str) -> int:
    """Pack the unfinished runs, split the tasks into arrays the cluster accepts and submit them."""
    if not todo:
        print("nothing to submit: every run is finished")
        return 0
    config = cluster_config()
    res = resources(args, config)
    max_array = args.max_array_size or max_array_size(config)
    source = "--max-array-size" if args.max_array_size else \
        ("MaxArraySize of scontrol show config" if "MaxArraySize" in config else "SLURM's default MaxArraySize")
    packs = pack(todo, args.pack_minutes * 60)
    folder, arrays, chained = write_submission(todo, packs, settings, sweep_dir, name, res, max_array,
                                               runner_script)
    hours = sum(map(estimate_seconds, todo)) / 3600
    packing = (f"{sum(len(p) > 1 for p in packs)} of them packs of short runs, up to {args.pack_minutes:g} min each"
               if args.pack_minutes else "one run each: --pack-minutes 0")
    print(f"{len(todo)} unfinished runs (about {hours:.0f} GPU-hours estimated) -> {len(packs)} array tasks "
          f"({packing}) "
          f"-> {len(arrays)} array job(s) of at most {max_array} tasks ({source}); files in {folder}")
    if chained:
        print(f"--max-parallel {args.max_parallel} < {len(arrays)} arrays: each array waits for the one before it")
    if args.dry_run:
        with open(arrays[0][0]) as f:
            print(f"--- {arrays[0][0]}\n{f.read()}---", end="\n")
        for script, offset, size, limit in arrays:
            print(f"would submit: sbatch {script}   (tasks {offset}..{offset + size - 1}"
                  + (f", at most {limit} at once" if limit else "") + ")")
        return 0
    if shutil.which("sbatch") is None:
        print("error: sbatch not found on PATH, nothing submitted. On a SLURM login node submit: "
              + "; ".join(f"sbatch {s}" for s, *_ in arrays), file=sys.stderr)
        return 2
    previous, lines = None, []
    for script, offset, size, _ in arrays:
        options = [f"--dependency=afterany:{previous}"] if chained and previous else []
        job_id, message = submit(script, options)
        if job_id is None:
            print(f"error: sbatch {script} failed: {message}", file=sys.stderr)
            return 1
        lines.append(f"{job_id} {offset} {offset + size - 1}\n")
        atomic_write_text(osp.join(folder, "submitted.txt"), "".join(lines))
        print(f"submitted array job {job_id}: tasks {offset}..{offset + size - 1} ({script})")
        previous = job_id
    for job in todo:
        write_state(sweep_dir, job, settings, "queued")
    print(f"watch it with: bash scripts/sweep.sh --status --sweep-dir {sweep_dir}")
    return 0


def status_command(jobs: Sequence[Job], settings: Settings, sweep_dir: str, name: str, args: argparse.Namespace,
                   runner_script: str) -> int:
    """--status (print) or --rerun-failed (submit the failed runs); exit 1 while some run has failed."""
    rows = sweep_status(sweep_dir, settings, jobs)
    queue_known = shutil.which("squeue") is not None or not submitted_arrays(sweep_dir)
    print(report(rows, name, queue_known))
    failed = [job for job, state, _, _ in rows if state == "failed"]
    if args.rerun_failed:
        if not failed:
            print("no failed run to submit")
            return 0
        return submit_slurm(failed, settings, sweep_dir, name, args, runner_script)
    return 1 if failed else 0
