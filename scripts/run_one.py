"""The one runner behind scripts/<method>.sh and scripts/sweep.sh.

A run is (method, dataset, shots, cfg, seed); its folder is
``$OUTPUT/<dataset>/<TRAINER>/<cfg>_<shots>shots/seed<seed>`` and it is started as CoOp does::

    $PYTHON train.py --root $DATA --seed S --trainer T \\
        --dataset-config-file configs/datasets/<dataset>.yaml \\
        --config-file configs/trainers/<T>/<cfg>.yaml --output-dir <folder> \\
        [--eval-only] DATASET.NUM_SHOTS <shots>

Rules shared by every entry point: a run whose folder holds results.json is skipped; a folder
without it (crashed or killed run) is run again, and train.py resumes from its checkpoint; all
names are checked against configs/ before anything starts; a run counts as done only when
train.py exits 0 AND results.json exists. Stdlib only, so it runs with any python3.

Entry points (run from the repository root):
    run_one.py method NAME DATASET SHOTS [CFG]   used by scripts/<NAME>.sh (env SEEDS)
    run_one.py sweep [options]                   used by scripts/sweep.sh (see --help)
    run_one.py job JOBFILE INDEX                 one line of a job file (SLURM array task)
Environment: PYTHON (interpreter for train.py, default python; may hold arguments),
DATA (dataset root, default ./data), OUTPUT (output root, default output).
"""
import argparse
import difflib
import hashlib
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple

try:
    import fcntl
except ImportError:  # not POSIX: run without the per-run lock
    fcntl = None

# script name -> registered trainer name
METHODS = {"zsclip": "ZeroshotCLIP", "vp": "VP", "ar": "AR", "attrvr": "AttrVR",
           "dvp_cse": "DVP_CSE", "dvp_cls": "DVP_CLS", "coop": "CoOp"}
EVAL_ONLY = frozenset({"ZeroshotCLIP"})
DEFAULT_CFG = "vit_b16"
DEFAULT_SEEDS = "1 2 3"
RESULTS = "results.json"
LOCK = ".run.lock"

Job = namedtuple("Job", "method dataset shots cfg seed")

SWEEP_FILE_HELP = """\
sweep file (--file): one KEY = VALUE per line, '#' starts a comment, lists are space-separated;
keys: methods, datasets, shots, seeds, cfg, mode, gpus, name. Command-line options win. Example:
    methods  = ar dvp_cls
    datasets = caltech101 dtd
    shots    = 1 16
    seeds    = 1 2 3
    cfg      = vit_b16
'all' as methods or datasets means every method / every configs/datasets/*.yaml.

modes:
  seq    one run after another, train.py output on the terminal (default)
  gpus   one run per GPU in parallel (CUDA_VISIBLE_DEVICES); GPUs from --gpus 0,1 or nvidia-smi;
         each run's output goes to <sweep folder>/logs/
  slurm  writes <sweep folder>/sweep.slurm (an array job over the unfinished runs) and submits it
         with sbatch; without sbatch on PATH the script is still written and the exit code is 2
A killed sweep is resumed by running the same command again: finished runs are skipped.
The sweep folder (default $OUTPUT/sweeps/<name>) keeps jobs.txt, logs/ and summary.txt.
"""


class UsageError(ValueError):
    """Bad names or values given by the user; raised before anything is launched."""


def trainer_of(method):
    return METHODS[method]


# ---------------------------------------------------------------- settings and names

class Settings:
    """Environment of a runner process (what tests override through PYTHON, DATA, OUTPUT)."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.python = shlex.split(env.get("PYTHON") or "python")
        if not self.python:
            raise UsageError("PYTHON is set but empty; unset it or name an interpreter")
        self.python_raw = env.get("PYTHON") or "python"
        self.data = env.get("DATA") or "./data"
        self.output = env.get("OUTPUT") or "output"


def _choices_msg(kind, name, available, where):
    msg = f"unknown {kind} '{name}'"
    close = difflib.get_close_matches(name, available, n=1)
    if close:
        msg += f" (did you mean '{close[0]}'?)"
    listing = ", ".join(available) if available else "nothing"
    return f"{msg}; {where} has: {listing}"


def resolve_method(name):
    """Script name for a method given as script name (ar) or trainer name (AR), any case."""
    key = name.strip().lower()
    if key in METHODS:
        return key
    for method, trainer in METHODS.items():
        if trainer.lower() == key:
            return method
    raise UsageError(_choices_msg("method", name, list(METHODS), "scripts/"))


def available_datasets():
    folder = osp.join("configs", "datasets")
    if not osp.isdir(folder):
        return None
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def available_cfgs(trainer):
    folder = osp.join("configs", "trainers", trainer)
    if not osp.isdir(folder):
        return []
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def dataset_config(dataset):
    return osp.join("configs", "datasets", f"{dataset}.yaml")


def trainer_config(method, cfg):
    return osp.join("configs", "trainers", trainer_of(method), f"{cfg}.yaml")


def parse_ints(text, what, minimum):
    values = []
    for token in str(text).replace(",", " ").split():
        try:
            value = int(token)
        except ValueError:
            raise UsageError(f"{what} must be integers, got '{token}'") from None
        if value < minimum:
            raise UsageError(f"{what} must be >= {minimum}, got {value}")
        values.append(value)
    if not values:
        raise UsageError(f"no {what} given")
    return values


def validate(jobs):
    """Check every config file the jobs need exists; one error listing all problems."""
    datasets = available_datasets()
    if datasets is None:
        raise UsageError(f"no configs/datasets folder in {os.getcwd()}; run the scripts from the "
                         "repository root")
    if not jobs:
        raise UsageError("nothing to run: the sweep is empty")
    problems = []
    for dataset in sorted({j.dataset for j in jobs}):
        if not osp.isfile(dataset_config(dataset)):
            problems.append(_choices_msg("dataset", dataset, datasets, "configs/datasets"))
    for method, cfg in sorted({(j.method, j.cfg) for j in jobs}):
        if not osp.isfile(trainer_config(method, cfg)):
            trainer = trainer_of(method)
            problems.append(_choices_msg(f"config for {trainer}", cfg, available_cfgs(trainer),
                                         f"configs/trainers/{trainer}"))
    for job in jobs:
        if job.shots < 1 and trainer_of(job.method) not in EVAL_ONLY:
            problems.append(f"{job.method}: shots must be >= 1, got {job.shots}")
            break
    if problems:
        raise UsageError("; ".join(problems) if len(problems) == 1
                         else "\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- one run

def run_dir(job, settings):
    return osp.join(settings.output, job.dataset, trainer_of(job.method),
                    f"{job.cfg}_{job.shots}shots", f"seed{job.seed}")


def command(job, settings):
    trainer = trainer_of(job.method)
    cmd = settings.python + [
        "train.py", "--root", settings.data, "--seed", str(job.seed), "--trainer", trainer,
        "--dataset-config-file", dataset_config(job.dataset),
        "--config-file", trainer_config(job.method, job.cfg),
        "--output-dir", run_dir(job, settings)]
    if trainer in EVAL_ONLY:
        cmd.append("--eval-only")
    cmd += ["DATASET.NUM_SHOTS", str(job.shots)]  # the 1-shot batch: TRAINER.<NAME>.BATCH_SIZE_1SHOT
    return cmd


def label(job, show_cfg=False):
    text = f"{job.method} {job.dataset} {job.shots} shots seed {job.seed}"
    return f"{text} ({job.cfg})" if show_cfg else text


def is_done(job, settings):
    return osp.isfile(osp.join(run_dir(job, settings), RESULTS))


Outcome = namedtuple("Outcome", "status detail")  # status: done failed skipped busy


class Runner:
    """Starts train.py for jobs; remembers the child processes so an interrupt can stop them."""

    def __init__(self, settings):
        self.settings = settings
        self.children = set()
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, job, gpu=None, log_path=None):
        folder = run_dir(job, self.settings)
        if osp.isfile(osp.join(folder, RESULTS)):
            return Outcome("skipped", "results.json exists")
        os.makedirs(folder, exist_ok=True)
        lock_file = open(osp.join(folder, LOCK), "a")
        try:
            if not self._try_lock(lock_file):
                return Outcome("busy", "another process is running it")
            if osp.isfile(osp.join(folder, RESULTS)):  # finished while we waited for the lock
                return Outcome("skipped", "results.json exists")
            return self._launch(job, folder, gpu, log_path, lock_file)
        finally:
            lock_file.close()

    @staticmethod
    def _try_lock(lock_file):
        if fcntl is None:
            return True
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # file system without locks: go on unlocked
            return True
        return True

    def _launch(self, job, folder, gpu, log_path, lock_file):
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        out = None
        if log_path:
            os.makedirs(osp.dirname(log_path), exist_ok=True)
            out = open(log_path, "a")
        start = time.time()
        try:
            with self.lock:
                if self.stopping:
                    return Outcome("failed", "sweep interrupted before start")
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
        if rc != 0:
            return Outcome("failed", f"exit {rc} after {took:.0f} s{where}")
        if not osp.isfile(osp.join(folder, RESULTS)):
            return Outcome("failed", f"exit 0 but no results.json in {folder}{where}")
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


# ---------------------------------------------------------------- many runs

class Progress:
    """Numbered progress lines and the done/failed/skipped tally."""

    def __init__(self, jobs, settings, show_cfg=False, out=None):
        self.total = len(jobs)
        self.index = {job: i + 1 for i, job in enumerate(jobs)}
        self.settings = settings
        self.show_cfg = show_cfg
        self.out = out
        self.outcomes = {}
        self.lock = threading.Lock()

    def say(self, job, text):
        with self.lock:
            print(f"[{self.index[job]}/{self.total}] {label(job, self.show_cfg)} ... {text}",
                  file=self.out or sys.stdout, flush=True)

    def record(self, job, outcome):
        self.outcomes[job] = outcome
        word = {"skipped": "skip", "done": "done", "failed": "FAILED",
                "busy": "skip (busy)"}[outcome.status]
        self.say(job, f"{word} ({outcome.detail})")

    def summary(self):
        counts = {s: 0 for s in ("done", "failed", "skipped", "busy")}
        for outcome in self.outcomes.values():
            counts[outcome.status] += 1
        not_run = self.total - len(self.outcomes)
        lines = [f"summary: {self.total} runs: done {counts['done']} / failed {counts['failed']}"
                 f" / skipped {counts['skipped']}"]
        if counts["busy"]:
            lines.append(f"  running in another process (not touched): {counts['busy']}")
        if not_run:
            lines.append(f"  not finished (interrupted): {not_run}")
        failed = [(job, o) for job, o in self.outcomes.items() if o.status == "failed"]
        if failed:
            lines.append("failed run folders:")
            lines += [f"  {run_dir(job, self.settings)}  ({o.detail})" for job, o in failed]
        return "\n".join(lines)

    def ok(self):
        return (len(self.outcomes) == self.total
                and all(o.status != "failed" for o in self.outcomes.values()))


def run_sequential(jobs, runner, progress, log_dir=None):
    for job in jobs:
        if is_done(job, runner.settings):
            progress.record(job, Outcome("skipped", "results.json exists"))
            continue
        progress.say(job, "running")
        log_path = osp.join(log_dir, log_name(job)) if log_dir else None
        progress.record(job, runner.run(job, log_path=log_path))


def run_parallel(jobs, runner, progress, gpus, log_dir):
    pending = []
    for job in jobs:
        if is_done(job, runner.settings):
            progress.record(job, Outcome("skipped", "results.json exists"))
        else:
            pending.append(job)
    queue_lock = threading.Lock()

    def worker(gpu):
        while not runner.stopping:
            with queue_lock:
                if not pending:
                    return
                job = pending.pop(0)
            log_path = osp.join(log_dir, log_name(job))
            progress.say(job, f"running on GPU {gpu} (log: {log_path})")
            progress.record(job, runner.run(job, gpu=gpu, log_path=log_path))

    threads = [threading.Thread(target=worker, args=(gpu,), daemon=True) for gpu in gpus]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)


def log_name(job):
    return f"{job.dataset}_{trainer_of(job.method)}_{job.cfg}_{job.shots}shots_seed{job.seed}.log"


def run_jobs(jobs, settings, parallel_gpus=None, log_dir=None, show_cfg=False):
    """Run (or skip) every job, print progress and the summary.

    Returns (exit code, summary text): 0 all done or skipped, 1 some failed, 130 interrupted.
    """
    runner = Runner(settings)
    progress = Progress(jobs, settings, show_cfg)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    try:
        if parallel_gpus:
            run_parallel(jobs, runner, progress, parallel_gpus, log_dir)
        else:
            run_sequential(jobs, runner, progress, log_dir)
    except KeyboardInterrupt:
        interrupted = True
        runner.stop()
        print("interrupted: running jobs were stopped; run the same command again to resume",
              file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = progress.summary()
    print(text, flush=True)
    return (130 if interrupted else 0 if progress.ok() else 1), text


def atomic_write_text(path, text):
    """Temp file in the same folder, then rename (a running SLURM array reads these files)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- entry: one method

def main_method(argv):
    """scripts/<method>.sh DATASET SHOTS [CFG]: seeds from $SEEDS."""
    if not argv:
        raise UsageError("usage: run_one.py method NAME DATASET SHOTS [CFG]")
    method = resolve_method(argv[0])
    parser = argparse.ArgumentParser(
        prog=f"bash scripts/{method}.sh",
        description=f"Run {trainer_of(method)} on one dataset for each seed in $SEEDS "
                    f"(default '{DEFAULT_SEEDS}').",
        epilog="env: PYTHON (default python), DATA (default ./data), OUTPUT (default output), "
               "SEEDS. Finished runs (results.json present) are skipped; unfinished folders are "
               "run again and resume from their checkpoint.")
    parser.add_argument("dataset", help="dataset config name (configs/datasets/<name>.yaml)")
    parser.add_argument("shots", help="shots per class (DATASET.NUM_SHOTS)")
    parser.add_argument("cfg", nargs="?", default=DEFAULT_CFG,
                        help=f"trainer config name (default {DEFAULT_CFG})")
    args = parser.parse_args(argv[1:])
    settings = Settings()
    shots = parse_ints(args.shots, "SHOTS", 0)[0]
    seeds = parse_ints(os.environ.get("SEEDS") or DEFAULT_SEEDS, "SEEDS", 0)
    jobs = [Job(method, args.dataset, shots, args.cfg, seed) for seed in seeds]
    validate(jobs)
    return run_jobs(jobs, settings)[0]


# ---------------------------------------------------------------- entry: sweep

SWEEP_KEYS = ("methods", "datasets", "shots", "seeds", "cfg", "mode", "gpus", "name")


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


def sweep_parser():
    parser = argparse.ArgumentParser(
        prog="bash scripts/sweep.sh",
        description="Run methods x datasets x shots x cfgs x seeds; finished runs are skipped.",
        epilog=SWEEP_FILE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", help=f"space-separated, of: {' '.join(METHODS)} (or 'all')")
    parser.add_argument("--datasets", help="dataset config names (or 'all')")
    parser.add_argument("--shots", help="e.g. '1 16'")
    parser.add_argument("--seeds", help=f"default '{DEFAULT_SEEDS}'")
    parser.add_argument("--cfg", help=f"trainer config name(s), default {DEFAULT_CFG}")
    parser.add_argument("--file", help="sweep file with KEY = VALUE lines (see below)")
    parser.add_argument("--mode", choices=("seq", "gpus", "slurm"))
    parser.add_argument("--gpus", help="GPU ids for --mode gpus, e.g. 0,1 (default: nvidia-smi)")
    parser.add_argument("--name", help="sweep name (default: derived from the run list)")
    parser.add_argument("--sweep-dir", help="sweep folder (default $OUTPUT/sweeps/<name>)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run (slurm: write the script) and launch nothing")
    parser.add_argument("--slurm-args", default="",
                        help="extra sbatch options, e.g. '--partition=gpu --time=24:00:00'")
    parser.add_argument("--max-parallel", type=int,
                        help="slurm: at most this many array tasks at once")
    return parser


def sweep_jobs(spec):
    """Jobs in order methods > datasets > shots > cfgs > seeds, validated."""
    def words(key):
        return (spec.get(key) or "").split()

    if not words("methods") or not words("datasets") or not spec.get("shots"):
        raise UsageError("a sweep needs methods, datasets and shots (options --methods, "
                         "--datasets, --shots or a --file); see --help")
    methods = list(METHODS) if words("methods") == ["all"] else \
        [resolve_method(m) for m in words("methods")]
    datasets = words("datasets")
    if datasets == ["all"]:
        datasets = available_datasets() or []
    shots = parse_ints(spec["shots"], "shots", 0)
    seeds = parse_ints(spec.get("seeds") or DEFAULT_SEEDS, "seeds", 0)
    cfgs = words("cfg") or [DEFAULT_CFG]
    jobs = []
    for method in dict.fromkeys(methods):
        for dataset in dict.fromkeys(datasets):
            for shot in dict.fromkeys(shots):
                for cfg in dict.fromkeys(cfgs):
                    jobs.extend(Job(method, dataset, shot, cfg, s) for s in dict.fromkeys(seeds))
    validate(jobs)
    return jobs


def detect_gpus(text):
    if text:
        gpus = [g.strip() for g in text.split(",") if g.strip()]
        if not gpus:
            raise UsageError("--gpus is empty; give ids like 0,1")
        return gpus
    if shutil.which("nvidia-smi") is None:
        raise UsageError("--mode gpus: nvidia-smi not found and no --gpus given; pass --gpus 0,1 "
                         "or use --mode seq")
    try:
        listing = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise UsageError(f"--mode gpus: nvidia-smi failed ({exc}); pass --gpus 0,1") from None
    gpus = [line.strip() for line in listing.splitlines() if line.strip()]
    if not gpus:
        raise UsageError("--mode gpus: nvidia-smi lists no GPU; pass --gpus or use --mode seq")
    return gpus


def job_line(job):
    return f"{job.method}\t{job.dataset}\t{job.shots}\t{job.cfg}\t{job.seed}"


def parse_job_line(line):
    """Inverse of job_line; a hand-edited line gets a clear error."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 5:
        raise UsageError(f"job line needs METHOD DATASET SHOTS CFG SEED (tab-separated): {line!r}")
    method, dataset, shots, cfg, seed = fields[:5]
    return Job(resolve_method(method), dataset, parse_ints(shots, "shots", 0)[0], cfg,
               parse_ints(seed, "seed", 0)[0])


def sbatch_lines(text):
    """'--partition=gpu --time 1:00:00' -> ['--partition=gpu', '--time 1:00:00']."""
    lines = []
    for token in shlex.split(text):
        if token.startswith("-") or not lines:
            lines.append(token)
        else:
            lines[-1] += " " + shlex.quote(token)
    return lines


def write_slurm(jobs, settings, sweep_dir, name, extra, max_parallel):
    """Job file + array script for the given (unfinished) jobs; returns the script path."""
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
              f"exec {q(sys.executable)} {q(osp.abspath(__file__))} job {q(job_file)} "
              '"$SLURM_ARRAY_TASK_ID"', ""]
    script = osp.join(sweep_dir, "sweep.slurm")
    atomic_write_text(script, "\n".join(lines))
    os.makedirs(osp.join(sweep_dir, "logs"), exist_ok=True)
    return script


def main_sweep(argv):
    args = sweep_parser().parse_args(argv)
    spec = read_sweep_file(args.file) if args.file else {}
    for key in SWEEP_KEYS:
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    mode = spec.get("mode") or "seq"
    if mode not in ("seq", "gpus", "slurm"):
        raise UsageError(f"unknown mode '{mode}'; use seq, gpus or slurm")
    settings = Settings()
    jobs = sweep_jobs(spec)
    gpus = detect_gpus(spec.get("gpus")) if mode == "gpus" and not args.dry_run else None
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UsageError("--max-parallel must be >= 1")

    digest = hashlib.sha1("\n".join(map(job_line, jobs)).encode()).hexdigest()[:8]
    name = spec.get("name") or (osp.splitext(osp.basename(args.file))[0] if args.file
                                else f"sweep_{digest}")
    sweep_dir = args.sweep_dir or osp.join(settings.output, "sweeps", name)
    atomic_write_text(osp.join(sweep_dir, "jobs.txt"),
                      "".join(f"{job_line(j)}\t{run_dir(j, settings)}\n" for j in jobs))
    show_cfg = len({j.cfg for j in jobs}) > 1
    todo = [j for j in jobs if not is_done(j, settings)]
    print(f"sweep {name}: {len(jobs)} runs ({len(jobs) - len(todo)} finished already), "
          f"mode {mode}, folder {sweep_dir}", flush=True)

    if mode == "slurm":
        if not todo:
            print("nothing to submit: every run has results.json")
            return 0
        script = write_slurm(todo, settings, sweep_dir, name, args.slurm_args,
                             args.max_parallel)
        print(f"wrote {script} (array of {len(todo)} unfinished runs)")
        if args.dry_run:
            with open(script) as f:
                print(f.read(), end="")
            return 0
        if shutil.which("sbatch") is None:
            print(f"error: sbatch not found on PATH, nothing submitted. Submit the script on a "
                  f"SLURM login node with: sbatch {script}", file=sys.stderr)
            return 2
        done = subprocess.run(["sbatch", script], capture_output=True, text=True)
        print((done.stdout + done.stderr).strip())
        return done.returncode

    if args.dry_run:
        progress = Progress(jobs, settings, show_cfg)
        for job in jobs:
            if is_done(job, settings):
                progress.say(job, "skip (results.json exists)")
            else:
                progress.say(job, "would run: " + shlex.join(command(job, settings)))
        print(f"dry run: {len(todo)} would run, {len(jobs) - len(todo)} skipped")
        return 0

    log_dir = osp.join(sweep_dir, "logs") if mode == "gpus" else None
    code, text = run_jobs(jobs, settings, parallel_gpus=gpus, log_dir=log_dir, show_cfg=show_cfg)
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    entries = {"method": main_method, "sweep": main_sweep, "job": main_job}
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
