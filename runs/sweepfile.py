"""The sweep's inputs: sweep files (KEY = VALUE lines), the sweep's name and its folder."""
import os.path as osp

from .jobs import UsageError

SWEEP_KEYS = ("methods", "datasets", "shots", "seeds", "cfg", "mode", "gpus", "name", "opts")

SWEEP_FILE_HELP = """\
sweep file (--file): one KEY = VALUE per line, '#' starts a comment, lists are space-separated;
keys: methods, datasets, shots, seeds, cfg, mode, gpus, name, opts. Command-line options win. Example:
    methods  = ar dvp_cls
    datasets = caltech101 dtd
    shots    = 1 16
    seeds    = 1 2 3
    cfg      = vit_b16
    opts     = OPTIM.MAX_EPOCH 50      # KEY VALUE pairs passed to every train.py run
'all' as methods or datasets means every registered method / every configs/datasets/*.yaml of a dataset
that can be trained on (not the test-only ImageNet variants).

modes:
  seq    one run after another, train.py output on the terminal (default)
  gpus   one run per GPU in parallel (CUDA_VISIBLE_DEVICES); GPUs from --gpus 0,1 or nvidia-smi;
         each run's output goes to <sweep folder>/logs/
  slurm  packs the unfinished runs into tasks, writes array jobs within the cluster's MaxArraySize under
         <sweep folder>/slurm/<NNN>/ and submits them with sbatch (without sbatch on PATH the scripts
         are still written and the exit code is 2); tasks requeue themselves before their time limit;
         --status shows where the sweep stands, --rerun-failed resubmits the failed runs (docs/sweeps.md)
A run counts as finished when its results.json parses and matches the run (trainer, shots, seed and
every value its config files and options set); any other run is run again, and the progress line
says why. A killed sweep is resumed by running the same command again.
The sweep folder (default $OUTPUT/sweeps/<name>) keeps jobs.txt, logs/ and summary.txt.
"""


def read_sweep_file(path):
    """KEY = VALUE lines -> dict; unknown keys and malformed lines are errors."""
    if not osp.isfile(path):
        raise UsageError(f"sweep file {path} not found")
    values = {}
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "=" not in line:
                raise UsageError(f"{path}:{number}: expected KEY = VALUE, got '{raw.strip()}'")
            key, value = (part.strip() for part in line.split("=", 1))
            key = key.lower()
            if key not in SWEEP_KEYS:
                raise UsageError(f"{path}:{number}: unknown key '{key}'; keys: "
                                 + ", ".join(SWEEP_KEYS))
            values[key] = value.strip("\"'")
    return values


def check_name(name):
    """A sweep name is one folder name under $OUTPUT/sweeps: no path separator, no '..'."""
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise UsageError(f"sweep name {name!r} must be a plain folder name (no path separator or '..'), "
                         "e.g. --name dtd_16shots; use --sweep-dir to put the sweep folder elsewhere")
    return name
