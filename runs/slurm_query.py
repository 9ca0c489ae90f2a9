"""What the SLURM commands say: the cluster's limits (scontrol show config), the queue (squeue), the
accounting (sacct), and sbatch itself. Every call degrades to "unknown" where a command is missing or
fails, so a sweep can be written, inspected and dry-run anywhere."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize


def _run(argv: Sequence[str], timeout: float = 60) -> str | None:
    """stdout of a SLURM command, or None when it is missing or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def cluster_config() -> dict[str, str]:
    """{key: value} of ``scontrol show config`` ({} when it cannot be read)."""
    text = _run(["scontrol", "show", "config"]) or ""
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


def max_array_size(config: dict[str, str]) -> int:
    """Largest array a job may have (task ids 0 .. MaxArraySize-1)."""
    try:
        return int(config.get("MaxArraySize", DEFAULT_MAX_ARRAY_SIZE))
    except ValueError:
        return DEFAULT_MAX_ARRAY_SIZE


def gres_types(config: dict[str, str]) -> set[str] | None:
    """The GRES types the cluster declares (None when unknown)."""
    if "GresTypes" not in config:
        return None
    value = config["GresTypes"]
    return set() if value in ("", "(null)") else {t.strip() for t in value.split(",") if t.strip()}


def submit(script: str, options: Sequence[str] = ()) -> tuple[str | None, str]:
    """sbatch --parsable OPTIONS SCRIPT -> (job id or None, sbatch's message)."""
    try:
        done = subprocess.run(["sbatch", "--parsable", *options, str(script)], capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    message = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return None, message
    return done.stdout.strip().split(";")[0].split()[-1], message


def queue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """{"<array job>_<task>": state} of the given array jobs' tasks still queued (squeue -r), or None
    when squeue cannot be asked. A task listed under its own job id is mapped back by its array ids."""
    if not job_ids:
        return {}
    text = _run(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%F %K %T"])
    if text is None:
        return None
    states = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            states[f"{parts[0]}_{parts[1]}"] = parts[2]
    return states


def accounting_states(job_ids: Sequence[str]) -> dict[str, str]:
    """{"<array job>_<task>": final state} from sacct (TIMEOUT, PREEMPTED, OUT_OF_MEMORY, ...), or {}
    where accounting is not kept."""
    if not job_ids:
        return {}
    text = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State"]) or ""
    states = {}
    for line in text.splitlines():
        job, _, state = line.partition("|")
        if "_" in job and "[" not in job:
            states[job] = state.split()[0] if state else ""
    return states
