"""The one runner behind scripts/method.sh (and the scripts/<method>.sh one-liners) and scripts/sweep.sh.

A run is (method, dataset, shots, cfg, seed, options); its folder and its "done" rule live in
runs/layout.py. It is started as CoOp does::

    $PYTHON train.py --root $DATA --seed S --trainer T \\
        --dataset-config-file configs/datasets/<dataset>.yaml \\
        --config-file configs/trainers/<T>/<cfg>.yaml --output-dir <folder> \\
        [--eval-only] DATASET.NUM_SHOTS <shots> [KEY VALUE ...]

Rules shared by every entry point: a run whose results.json parses and matches the run is skipped;
any other folder (crashed, killed, corrupt or stale results.json) is run again, the progress line
says why, and train.py resumes from its checkpoint; all names are checked against the trainer
registry (runs/trainers.json) and configs/ before anything starts; a run counts as done only when
train.py exits 0 AND its results.json matches. Needs only the standard library and PyYAML (a requirement).

Entry points (run from the repository root):
    run_one.py method NAME DATASET SHOTS [CFG] [KEY VALUE ...]   scripts/method.sh (env SEEDS)
    run_one.py sweep [options]                                   scripts/sweep.sh (see --help)
    run_one.py job JOBFILE INDEX                                 one line of a job file
    run_one.py task FOLDER INDEX                                 one SLURM array task (runs/slurm_task.py)
Environment: PYTHON (interpreter for train.py, default python; may hold arguments),
DATA (dataset root, default ./data), OUTPUT (output root, default output).
"""
import signal
import sys

# A SLURM task (entry "task") may get the pre-limit SIGUSR1 (or a SIGTERM) while Python is still starting:
# without a handler it would die unrequeued. The signals are kept here, before any other import, and handed
# to run_pack.
EARLY_SIGNALS = []
if sys.argv[1:2] == ["task"]:
    for _sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, lambda signum, frame: EARLY_SIGNALS.append(signum))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import os.path as osp  # noqa: E402
import shlex  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
try:
    import yaml  # noqa: F401  (the runner reads the config yamls as train.py does)
except ImportError:
    sys.exit("ERROR: this python has no PyYAML, which the runner needs: pip install -r requirements.txt, "
             "or set RUNNER_PYTHON to the python that has the toolkit's requirements")
from engine.io import atomic_write_text  # noqa: E402
from runs import slurm_status, slurm_sweep  # noqa: E402
from runs.gpus import detect_gpus  # noqa: E402
from runs.jobs import (  # noqa: E402
    DEFAULT_CFG,
    DEFAULT_SEEDS,
    Job,
    Settings,
    UsageError,
    check_opts,
    command,
    done,
    methods,
    parse_ints,
    parse_opts,
    resolve_method,
    run_dir,
    starts_options,
    trainable_datasets,
    trainer_of,
    validate,
)
from runs.progress import Progress  # noqa: E402
from runs.schedule import run_jobs  # noqa: E402
from runs.slurm import job_line, parse_job_line  # noqa: E402
from runs.slurm_task import run_pack  # noqa: E402
from runs.sweepfile import SWEEP_FILE_HELP, SWEEP_KEYS, check_name, read_sweep_file  # noqa: E402

RESUME_NOTE = ("A run whose results.json parses and matches it (trainer, shots, seed, config) is "
               "skipped; any other folder is run again (the progress line says why) and resumes from "
               "its checkpoint.")


# ---------------------------------------------------------------- entry: one method

def main_method(argv):
    """scripts/method.sh NAME DATASET SHOTS [CFG] [KEY VALUE ...]: seeds from $SEEDS."""
    dry_run = "--dry-run" in argv
    argv = [a for a in argv if a != "--dry-run"]
    if not argv:
        raise UsageError("usage: run_one.py method NAME DATASET SHOTS [CFG] [KEY VALUE ...] [--dry-run]")
    method = resolve_method(argv[0])
    parser = argparse.ArgumentParser(
        prog=f"bash scripts/{method}.sh",
        description=f"Run {trainer_of(method)} on one dataset for each seed in $SEEDS "
                    f"(default '{DEFAULT_SEEDS}').",
        epilog="KEY VALUE pairs after the arguments go to train.py as config options, e.g. "
               "OPTIM.MAX_EPOCH 50 OPTIM.LR 0.002 (checked before the first run; --dry-run: print what would "
               "run). env: PYTHON (default python), "
               "DATA (default ./data), OUTPUT (default output), SEEDS. " + RESUME_NOTE)
    parser.add_argument("dataset", help="dataset config name (configs/datasets/<name>.yaml)")
    parser.add_argument("shots", help="shots per class (DATASET.NUM_SHOTS)")
    parser.add_argument("cfg", nargs="?", default=DEFAULT_CFG,
                        help=f"trainer config name (configs/trainers/{trainer_of(method)}/<cfg>.yaml, "
                             f"default {DEFAULT_CFG})")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config options for train.py")
    rest = argv[1:]
    positional = rest[:3]
    if len(positional) == 3 and starts_options(positional[2]):  # no CFG: options start at once
        positional = positional[:2]
    args = parser.parse_args(positional)
    opts = parse_opts(rest[len(positional):])
    settings = Settings()
    shots = parse_ints(args.shots, "SHOTS", 0)[0]
    seeds = parse_ints(os.environ.get("SEEDS") or DEFAULT_SEEDS, "SEEDS", 0)
    jobs = [Job(method, args.dataset, shots, args.cfg, seed, opts) for seed in seeds]
    validate(jobs)
    check_opts(opts, settings)
    if dry_run:
        return dry_run_report(jobs, settings, False)
    return run_jobs(jobs, settings)[0]


def dry_run_report(jobs, settings, show_cfg, verdicts=None):
    """--dry-run: each run's verdict and the command that would start it; nothing is launched."""
    verdicts = verdicts or {job: done(job, settings) for job in jobs}
    progress = Progress(jobs, settings, show_cfg)
    for job in jobs:
        verdict = verdicts[job]
        progress.say(job, f"skip ({verdict.reason})" if verdict.done else
                     f"would run ({verdict.reason}): " + shlex.join(command(job, settings)))
    todo = sum(1 for job in jobs if not verdicts[job].done)
    print(f"dry run: {todo} would run, {len(jobs) - todo} skipped")
    return 0


# ---------------------------------------------------------------- entry: sweep

def sweep_parser():
    parser = argparse.ArgumentParser(
        prog="bash scripts/sweep.sh",
        description="Run methods x datasets x shots x cfgs x seeds; finished runs are skipped.",
        epilog=SWEEP_FILE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", help=f"space-separated, of: {' '.join(methods())} (or 'all')")
    parser.add_argument("--datasets", help="dataset config names (configs/datasets/<name>.yaml) or 'all'")
    parser.add_argument("--shots", help="e.g. '1 16'")
    parser.add_argument("--seeds", help=f"default '{DEFAULT_SEEDS}'")
    parser.add_argument("--cfg", help=f"trainer config name(s), default {DEFAULT_CFG}")
    parser.add_argument("--opts", help="config options for every run: 'KEY VALUE ...'")
    parser.add_argument("--file", help="sweep file with KEY = VALUE lines (see below)")
    parser.add_argument("--mode", choices=("seq", "gpus", "slurm"))
    parser.add_argument("--gpus", help="GPU ids for --mode gpus, e.g. 0,1 (default: nvidia-smi)")
    parser.add_argument("--name", help="sweep name, a plain folder name (default: from the run list)")
    parser.add_argument("--sweep-dir", help="sweep folder (default $OUTPUT/sweeps/<name>)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run (slurm: write the script) and launch nothing")
    slurm_sweep.add_arguments(parser)
    return parser


def sweep_jobs(spec, settings):
    """Jobs in order methods > datasets > shots > cfgs > seeds, validated."""
    def words(key):
        return (spec.get(key) or "").split()

    if not words("methods") or not words("datasets") or not spec.get("shots"):
        raise UsageError("a sweep needs methods, datasets and shots (options --methods, "
                         "--datasets, --shots or a --file); see --help")
    names = list(methods()) if words("methods") == ["all"] else \
        [resolve_method(m) for m in words("methods")]
    datasets = words("datasets")
    if datasets == ["all"]:
        datasets = trainable_datasets()
    shots = parse_ints(spec["shots"], "shots", 0)
    seeds = parse_ints(spec.get("seeds") or DEFAULT_SEEDS, "seeds", 0)
    cfgs = words("cfg") or [DEFAULT_CFG]
    opts = parse_opts(shlex.split(spec.get("opts") or ""), "opts")
    jobs = []
    for method in dict.fromkeys(names):
        for dataset in dict.fromkeys(datasets):
            for shot in dict.fromkeys(shots):
                for cfg in dict.fromkeys(cfgs):
                    jobs.extend(Job(method, dataset, shot, cfg, s, opts) for s in dict.fromkeys(seeds))
    validate(jobs)
    check_opts(opts, settings)
    return jobs


def main_sweep(argv):
    args = sweep_parser().parse_args(slurm_sweep.glue_values(argv))
    spec = read_sweep_file(args.file) if args.file else {}
    for key in SWEEP_KEYS:
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    mode = spec.get("mode") or "seq"
    if mode not in ("seq", "gpus", "slurm"):
        raise UsageError(f"unknown mode '{mode}'; use seq, gpus or slurm")
    if spec.get("name") is not None:
        check_name(spec["name"])
    settings = Settings()
    slurm_sweep.check_arguments(args)
    if (args.status or args.rerun_failed) and not spec.get("methods") and (spec.get("name") or args.sweep_dir):
        sweep_dir = args.sweep_dir or osp.join(settings.output, "sweeps", spec["name"])
        jobs = slurm_status.sweep_jobs(sweep_dir)
        if jobs is None:
            raise UsageError(f"no sweep in {sweep_dir} (no jobs.txt); give the sweep's --name or --sweep-dir")
        return slurm_sweep.status_command(jobs, settings, sweep_dir, spec.get("name") or osp.basename(sweep_dir),
                                          args, __file__)
    jobs = sweep_jobs(spec, settings)
    gpus = detect_gpus(spec.get("gpus")) if mode == "gpus" and not args.dry_run else None

    digest = hashlib.sha1("\n".join(map(job_line, jobs)).encode()).hexdigest()[:8]
    name = check_name(spec.get("name") or (osp.splitext(osp.basename(args.file))[0] if args.file
                                           else f"sweep_{digest}"))
    sweep_dir = args.sweep_dir or osp.join(settings.output, "sweeps", name)
    atomic_write_text(osp.join(sweep_dir, "jobs.txt"),
                      "".join(f"{job_line(j)}\t{run_dir(j, settings)}\n" for j in jobs))
    if args.status or args.rerun_failed:
        return slurm_sweep.status_command(jobs, settings, sweep_dir, name, args, __file__)
    show_cfg = len({j.cfg for j in jobs}) > 1
    verdicts = {job: done(job, settings) for job in jobs}
    todo = [j for j in jobs if not verdicts[j].done]
    print(f"sweep {name}: {len(jobs)} runs ({len(jobs) - len(todo)} finished already), "
          f"mode {mode}, folder {sweep_dir}", flush=True)

    if mode == "slurm":
        return slurm_sweep.submit_slurm(todo, settings, sweep_dir, name, args, __file__)

    if args.dry_run:
        return dry_run_report(jobs, settings, show_cfg, verdicts)

    log_dir = osp.join(sweep_dir, "logs") if mode == "gpus" else None
    code, text = run_jobs(jobs, settings, parallel_gpus=gpus, log_dir=log_dir, show_cfg=show_cfg, verdicts=verdicts)
    atomic_write_text(osp.join(sweep_dir, "summary.txt"), text + "\n")
    return code


# ---------------------------------------------------------------- entry: one job of a file

def main_job(argv):
    """run_one.py job JOBFILE INDEX: run line INDEX (0-based) of a job file (SLURM array task)."""
    if len(argv) != 2:
        raise UsageError("usage: run_one.py job JOBFILE INDEX")
    path, index = argv
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    i = parse_ints(index, "INDEX", 0)[0]
    if i >= len(lines):
        raise UsageError(f"INDEX {i} out of range: {path} has {len(lines)} jobs")
    job = parse_job_line(lines[i])
    validate([job])
    return run_jobs([job], Settings())[0]


def main_task(argv):
    """run_one.py task FOLDER INDEX: the runs of pack INDEX of a submission folder (one SLURM array task)."""
    if len(argv) != 2:
        raise UsageError("usage: run_one.py task FOLDER INDEX")
    return run_pack(argv[0], parse_ints(argv[1], "INDEX", 0)[0], early_signals=EARLY_SIGNALS)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    entries = {"method": main_method, "sweep": main_sweep, "job": main_job, "task": main_task}
    if not argv or argv[0] not in entries:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return entries[argv[0]](argv[1:])
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
