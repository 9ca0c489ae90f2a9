"""Job files (one run per line), pack files (one array task per line) and the array scripts that run them.

One submission of a sweep is a folder ``<sweep>/slurm/<NNN>/`` that never changes once submitted (a
later submission gets the next number, so tasks still queued keep reading their own files)::

    jobs.txt        one run per line (job_line)
    packs.txt       one array task per line: the line numbers (0-based) of jobs.txt it runs, in order
    array-<k>.slurm the k-th array job: its tasks are packs.txt lines offset+0 .. offset+n-1
    submitted.txt   "<array job id> <first pack> <last pack>" per submitted array
"""
from __future__ import annotations

import os
import os.path as osp
import shlex
import sys
from collections import namedtuple
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.io import atomic_write_text

from .jobs import Job, UsageError, parse_ints, parse_opts, resolve_method

if TYPE_CHECKING:
    from .jobs import Settings

# gpus: per task (0: a CPU-only sweep); cpus, mem, time, partition: as sbatch takes them ("" = the
# cluster's default); extra: free sbatch options; signal_s: seconds before the time limit at which the
# task gets SIGUSR1 (it then stops its run and requeues itself); max_parallel: over all arrays.
Resources = namedtuple("Resources", "gpus cpus mem time partition extra signal_s max_parallel")


def job_line(job: Job) -> str:
    return "\t".join([job.method, job.dataset, str(job.shots), job.cfg, str(job.seed), *job.opts])


def parse_job_line(line: str) -> Job:
    """Inverse of job_line; a hand-edited line gets a clear error."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 5:
        raise UsageError(f"job line needs METHOD DATASET SHOTS CFG SEED [KEY VALUE ...] (tab-separated): {line!r}")
    method, dataset, shots, cfg, seed = fields[:5]
    return Job(resolve_method(method), dataset, parse_ints(shots, "shots", 0)[0], cfg,
               parse_ints(seed, "seed", 0)[0], parse_opts(fields[5:], "job line options"))


def read_lines(path: str) -> list[str]:
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def read_pack(folder: str, index: int) -> list[Job]:
    """The jobs of array task ``index`` of a submission folder."""
    lines, packs = read_lines(osp.join(folder, "jobs.txt")), read_lines(osp.join(folder, "packs.txt"))
    if not 0 <= index < len(packs):
        raise UsageError(f"task {index} out of range: {folder}/packs.txt has {len(packs)} tasks")
    return [parse_job_line(lines[int(i)]) for i in packs[index].split()]


def sbatch_lines(text: str) -> list[str]:
    """'--partition=gpu --time 1:00:00' -> ['--partition=gpu', '--time 1:00:00']."""
    lines = []
    for token in shlex.split(text):
        if token.startswith("-") or not lines:
            lines.append(token)
        else:
            lines[-1] += " " + shlex.quote(token)
    return lines


def resource_lines(res: Resources) -> list[str]:
    """#SBATCH options for the resources; a GPU request in the free options replaces the default."""
    extra = sbatch_lines(res.extra)
    lines = ["--requeue", "--open-mode=append", f"--signal=B:USR1@{res.signal_s}"]
    asks_gpu = any(opt.split("=")[0].split()[0] in ("--gres", "--gpus", "--gpus-per-task", "-G") for opt in extra)
    if res.gpus and not asks_gpu:
        lines.append(f"--gres=gpu:{res.gpus}")
    lines += [f"--{key}={value}" for key, value in (("cpus-per-task", res.cpus), ("mem", res.mem),
                                                      ("time", res.time), ("partition", res.partition)) if value]
    return lines + extra


def chunks(n_tasks: int, max_array: int) -> list[tuple[int, int]]:
    """(offset, size) of the arrays that split ``n_tasks`` tasks into arrays of at most ``max_array``."""
    return [(start, min(max_array, n_tasks - start)) for start in range(0, n_tasks, max_array)]


def parallel_limits(sizes: Sequence[int], max_parallel: int) -> tuple[list[int], bool]:
    """(per-array %limit, chained?) so that at most ``max_parallel`` tasks run at once over all arrays:
    the limit is shared out among the arrays when there are enough slots, else the arrays run one after
    another (each waits for the previous one: --dependency=afterany)."""
    if not max_parallel:
        return [0] * len(sizes), False
    if max_parallel >= len(sizes):
        base, extra = divmod(max_parallel, len(sizes))
        return [base + (1 if k < extra else 0) for k in range(len(sizes))], False
    return [max_parallel] * len(sizes), True


def write_submission(jobs: Sequence[Job], packs: Sequence[Sequence[int]], settings: Settings, sweep_dir: str,
                     name: str, res: Resources, max_array: int,
                     runner_script: str) -> tuple[str, list[tuple[str, int, int, int]], bool]:
    """Write the next submission folder; returns (folder, [(script, offset, size, %limit)], chained)."""
    sweep_dir = osp.abspath(sweep_dir)
    base = osp.join(sweep_dir, "slurm")
    os.makedirs(base, exist_ok=True)
    used = [int(d) for d in os.listdir(base) if d.isdigit()]
    folder = osp.join(base, f"{max(used, default=0) + 1:03d}")
    os.makedirs(folder)
    os.makedirs(osp.join(sweep_dir, "logs"), exist_ok=True)
    atomic_write_text(osp.join(folder, "jobs.txt"), "".join(job_line(j) + "\n" for j in jobs))
    atomic_write_text(osp.join(folder, "packs.txt"), "".join(" ".join(map(str, p)) + "\n" for p in packs))
    spans = chunks(len(packs), max_array)
    limits, chained = parallel_limits([size for _, size in spans], res.max_parallel)
    arrays = []
    for k, ((offset, size), limit) in enumerate(zip(spans, limits, strict=False)):
        script = osp.join(folder, f"array-{k}.slurm")
        text = array_script(settings, sweep_dir, folder, name, res, offset, size, limit, runner_script)
        atomic_write_text(script, text, mode=0o777)
        arrays.append((script, offset, size, limit))
    return folder, arrays, chained


def array_script(settings: Settings, sweep_dir: str, folder: str, name: str, res: Resources, offset: int, size: int,
                 limit: int, runner_script: str) -> str:
    q = shlex.quote
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={q('sweep-' + name)}",
             f"#SBATCH --array=0-{size - 1}" + (f"%{limit}" if limit else ""),
             f"#SBATCH --output={q(osp.join(sweep_dir, 'logs', 'slurm-%A_%a.out'))}"]
    lines += [f"#SBATCH {opt}" for opt in resource_lines(res)]
    lines += [f"# Array task i runs line {offset}+i of packs.txt: its runs one after another, each logged to",
              "# logs/<run>.log; finished runs are skipped. On SIGUSR1 (sent before the time limit) the",
              "# running train.py is stopped and the task requeues itself; the run resumes from its checkpoint.",
              "set -eu",
              f"cd {q(os.getcwd())}",
              f"export PYTHON={q(settings.python_raw)} DATA={q(settings.data)} OUTPUT={q(settings.output)}",
              f"exec {q(sys.executable)} {q(osp.abspath(runner_script))} task {q(folder)} "
              f'"$(( {offset} + SLURM_ARRAY_TASK_ID ))"', ""]
    return "\n".join(lines)
