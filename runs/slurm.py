"""Job files (one run per line) and the SLURM array script that runs them."""
import os
import os.path as osp
import shlex
import sys

from engine.io import atomic_write_text
from .jobs import Job, UsageError, parse_ints, parse_opts, resolve_method


def job_line(job):
    return "\t".join([job.method, job.dataset, str(job.shots), job.cfg, str(job.seed), *job.opts])


def parse_job_line(line):
    """Inverse of job_line; a hand-edited line gets a clear error."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 5:
        raise UsageError(f"job line needs METHOD DATASET SHOTS CFG SEED [KEY VALUE ...] (tab-separated): {line!r}")
    method, dataset, shots, cfg, seed = fields[:5]
    return Job(resolve_method(method), dataset, parse_ints(shots, "shots", 0)[0], cfg,
               parse_ints(seed, "seed", 0)[0], parse_opts(fields[5:], "job line options"))


def sbatch_lines(text):
    """'--partition=gpu --time 1:00:00' -> ['--partition=gpu', '--time 1:00:00']."""
    lines = []
    for token in shlex.split(text):
        if token.startswith("-") or not lines:
            lines.append(token)
        else:
            lines[-1] += " " + shlex.quote(token)
    return lines


def write_slurm(jobs, settings, sweep_dir, name, extra, max_parallel, runner_script):
    """Job file + array script for the given (unfinished) jobs; returns the script path.

    ``runner_script`` is the run_one.py each array task executes (``job JOBFILE INDEX``)."""
    sweep_dir = osp.abspath(sweep_dir)
    job_file = osp.join(sweep_dir, "slurm_jobs.txt")
    atomic_write_text(job_file, "".join(job_line(j) + "\n" for j in jobs))
    array = f"0-{len(jobs) - 1}" + (f"%{max_parallel}" if max_parallel else "")
    q = shlex.quote
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={q('sweep-' + name)}",
             f"#SBATCH --array={array}",
             "#SBATCH --gres=gpu:1",
             f"#SBATCH --output={q(osp.join(sweep_dir, 'logs', 'slurm-%A_%a.out'))}"]
    lines += [f"#SBATCH {opt}" for opt in sbatch_lines(extra)]
    lines += ["# One array task = one line of slurm_jobs.txt; finished runs are skipped, so the",
              "# script can be submitted again to finish what is left.",
              "set -eu",
              f"cd {q(os.getcwd())}",
              f"export PYTHON={q(settings.python_raw)} DATA={q(settings.data)} "
              f"OUTPUT={q(settings.output)}",
              f"exec {q(sys.executable)} {q(osp.abspath(runner_script))} job {q(job_file)} "
              '"$SLURM_ARRAY_TASK_ID"', ""]
    script = osp.join(sweep_dir, "sweep.slurm")
    atomic_write_text(script, "\n".join(lines), mode=0o777)
    os.makedirs(osp.join(sweep_dir, "logs"), exist_ok=True)
    return script
