"""The runner behind scripts/base2new.sh and scripts/xd.sh: train once, then test the same run elsewhere.

base2new METHOD DATASET [CFG] [KEY VALUE ...] [--dry-run]   (CoCoOp's base-to-new protocol), per seed in $SEEDS:
    train  $OUTPUT/base2new/train_base/<dataset>/<TRAINER>/<cfg>_16shots/seed<S>
           DATASET.SUBSAMPLE_CLASSES base (its results.json is the base-class test)
    test   $OUTPUT/base2new/test_new/<dataset>/<TRAINER>/<cfg>_16shots/seed<S>
           --eval-only --model-dir <train run> --load-epoch <its last epoch>, SUBSAMPLE_CLASSES new
xd METHOD [CFG] [KEY VALUE ...] [--dry-run]   (cross-dataset transfer and domain generalisation), per seed:
    train  $OUTPUT/xd/train/imagenet/<TRAINER>/<cfg>_16shots/seed<S>   (all classes, 16 shots)
    test   $OUTPUT/xd/test/<target>/<TRAINER>/<cfg>_16shots/seed<S>    for every target of
           XD_TARGETS (CoOp's ten other datasets) and DG_TARGETS (the four ImageNet variants)
ZeroshotCLIP learns nothing: its "train" run is an --eval-only run too and its tests load no model.
base2new refuses a method that cannot score unseen classes (scores_unseen_classes false in the trainer
catalogue, from its CLASS_TRANSFER) before any run, with the reason; xd tests such a method (a per-class head)
on the ImageNet variants only (a subset of its classes, docs/protocols.md) and refuses other XD_TARGETS.

Every run is started as CoOp's scripts do (python train.py --root ... --seed ... --trainer ...
--dataset-config-file ... --config-file ... --output-dir ... KEY VALUE ...). A run whose folder holds
a finished run of that step (runs/layout.py check_done: trainer, shots, seed and the values its config
files and options set; a test also records in tested_model.json which training result it evaluated,
and must match the training run's current one) is skipped; any other folder is run again (train.py
resumes from its checkpoint), and why is said. Tests of a seed start only when its training run is
done, and run again when that training run was run again (in this or an earlier invocation). All names
are checked against configs/ (options: one train.py --check-opts) before anything starts. No torch \
(the standard library and PyYAML). \
Environment: PYTHON (default python; may hold arguments), DATA (default ./data),
OUTPUT (default output), SEEDS (default "1 2 3"), XD_TARGETS (overrides the xd target list).
"""
import glob
import json
import os
import os.path as osp
import shlex
import signal
import subprocess
import sys
import time
from collections import namedtuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from engine.checkpoint_files import EPOCH_FILE, EPOCH_FILE_GLOB, epoch_of, model_file  # noqa: E402  (stdlib only)
from engine.io import atomic_write_json  # noqa: E402  (stdlib only)
from engine.names import squash  # noqa: E402  (stdlib only)
from runs import catalogue, layout  # noqa: E402  (the registered datasets; the run-folder layout)
from runs.jobs import (  # noqa: E402
    DEFAULT_CFG,
    DEFAULT_SEEDS,
    Settings,
    UsageError,
    available_cfgs,
    available_datasets,
    check_opts,
    rerun_flags,
    split_arguments,
)
from runs.launcher import run_lock  # noqa: E402  (the sweep's per-run lock)
from runs.protocol_layout import (  # noqa: E402,F401
    BASE2NEW_TEST,
    BASE2NEW_TRAIN,
    PROTOCOL_SHOTS,
    XD_SOURCE,
    XD_TARGETS,
    XD_TEST,  # (the tables read them)
    XD_TRAIN,
    dg_targets,
    protocol_dir_of,
    run_folder,
    xd_targets,
)

RESULTS = layout.RESULTS
TESTED_MODEL = "tested_model.json"  # in a test run: trained_model() of the training run it evaluated


def __getattr__(name):
    if name == "DG_TARGETS":
        return dg_targets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Script names of the registered trainers (zsclip -> ZeroshotCLIP), and the trainers that only evaluate.
ALIASES = {m.script: m.trainer for m in catalogue.load().values()}
EVAL_ONLY = frozenset(m.trainer for m in catalogue.load().values() if not m.trains)

# options: (dataset, cfg, seed); opts: the user's trailing KEY VALUE pairs (every step of the protocol gets them)
Step = namedtuple("Step", "label folder trainer classes options model_dir opts", defaults=((),))



def resolve_trainer(method):
    """The trainer (configs/trainers/<TRAINER>) of a script name (ar, dvp_cls, zsclip) or trainer."""
    folder = osp.join("configs", "trainers")
    if not osp.isdir(folder):
        raise UsageError(f"no configs/trainers folder in {os.getcwd()}; run the scripts from the "
                         "repository root")
    trainers = sorted(os.listdir(folder))
    wanted = squash(ALIASES.get(method.lower(), method))
    for trainer in trainers:
        if squash(trainer) == wanted:
            return trainer
    raise UsageError(f"unknown method '{method}'; configs/trainers has: {', '.join(trainers)} "
                     f"(script names as in scripts/*.sh are accepted too)")


def check_scores_unseen_classes(trainer):
    """Base-to-new tests on classes the model never saw: a method that cannot score them (an empty
    CLASS_TRANSFER, kept in the trainer catalogue) is refused before any run, with the reason."""
    method = next((m for m in catalogue.load().values() if squash(m.trainer) == squash(trainer)), None)
    if method is None or method.scores_unseen_classes:
        return
    raise UsageError(f"the base-to-new protocol is not applicable to {method.trainer}: it cannot score classes "
                     f"it was not trained on ({method.unseen_classes}), and base-to-new tests on the unseen half. "
                     f"Use the few-shot protocol instead: bash scripts/{method.script}.sh DATASET SHOTS")


def check_configs(trainer, cfg, datasets):
    problems = []
    if not osp.isfile(layout.trainer_config(trainer, cfg)):
        problems.append(f"no config '{cfg}' for {trainer}; configs/trainers/{trainer} has: "
                        + ", ".join(available_cfgs(trainer)))
    missing = [d for d in datasets if not osp.isfile(dataset_config(d))]
    if missing:
        have = available_datasets() or []
        problems.append("unknown dataset(s) " + ", ".join(missing) + "; configs/datasets has: "
                        + ", ".join(have))
    if problems:
        raise UsageError("; ".join(problems))


def parse_seeds(text):
    try:
        seeds = [int(tok) for tok in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"SEEDS must be integers, got '{text}'") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"SEEDS must be non-negative integers, got '{text}'")
    return list(dict.fromkeys(seeds))


dataset_config = layout.dataset_config


# ---------------------------------------------------------------- the steps of a protocol

def base2new_steps(trainer, dataset, cfg, seeds, output, opts=()):
    steps = []
    for seed in seeds:
        train = run_folder(output, BASE2NEW_TRAIN, dataset, trainer, cfg, seed, opts)
        test = run_folder(output, BASE2NEW_TEST, dataset, trainer, cfg, seed, opts)
        steps.append(Step(f"{trainer} {dataset} seed {seed}: train on base classes", train,
                          trainer, "base", (dataset, cfg, seed), None, opts))
        steps.append(Step(f"{trainer} {dataset} seed {seed}: test on new classes", test,
                          trainer, "new", (dataset, cfg, seed), train, opts))
    return steps


def xd_steps(trainer, cfg, seeds, output, targets, opts=()):
    steps = []
    for seed in seeds:
        train = run_folder(output, XD_TRAIN, XD_SOURCE, trainer, cfg, seed, opts)
        steps.append(Step(f"{trainer} {XD_SOURCE} seed {seed}: train", train, trainer, "all",
                          (XD_SOURCE, cfg, seed), None, opts))
        for target in targets:
            steps.append(Step(f"{trainer} seed {seed}: test on {target}",
                              run_folder(output, XD_TEST, target, trainer, cfg, seed, opts),
                              trainer, "all", (target, cfg, seed), train, opts))
    return steps


def config_files(step):
    """The step's dataset and trainer config files (what check_done compares the recorded config with)."""
    dataset, cfg, _ = step.options
    return [dataset_config(dataset), layout.trainer_config(step.trainer, cfg)]


def protocol_options(step):
    """The KEY VALUE options every protocol run gets (command() appends them), then the user's."""
    return ["DATASET.NUM_SHOTS", str(PROTOCOL_SHOTS), "DATASET.SUBSAMPLE_CLASSES", step.classes] + list(step.opts)


def trained_model(model_dir):
    """What identifies a training run's result: its run.json config_hash, and size and mtime of its
    results.json and last checkpoints. A test recorded with other values evaluated another model."""
    def stamp(path):
        return [os.stat(path).st_size, os.stat(path).st_mtime_ns] if osp.isfile(path) else None

    try:
        with open(osp.join(model_dir, "run.json")) as f:
            config_hash = json.load(f).get("config_hash")
    except (OSError, ValueError, AttributeError):
        config_hash = None
    epoch = last_epoch(model_dir)
    checkpoints = {osp.relpath(f, model_dir): stamp(f)
                   for f in sorted(glob.glob(osp.join(model_dir, "*", model_file(epoch))))}
    return {"model_dir": model_dir, "config_hash": config_hash, "checkpoints": checkpoints,
            "results": stamp(osp.join(model_dir, RESULTS))}


def recorded_model(step):
    """The trained_model record a finished test run keeps in its folder (TESTED_MODEL), or None."""
    try:
        with open(osp.join(step.folder, TESTED_MODEL)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def finished(step, data):
    """(True, "") when the step's folder holds a finished run of exactly this step on the data under
    ``data`` (runs/layout.py's check_done; a test also of the current result of its training run);
    (False, why not) otherwise."""
    if not osp.exists(osp.join(step.folder, RESULTS)):
        return False, ""
    _, _, seed = step.options
    verdict = layout.check_done(step.folder, step.trainer, PROTOCOL_SHOTS, seed, config_files(step),
                                protocol_options(step), data_root=data)
    if not verdict.done:
        return False, f"{osp.join(step.folder, RESULTS)}: {verdict.reason}"
    if step.model_dir and step.trainer not in EVAL_ONLY:  # ZeroshotCLIP's tests load no model
        recorded = recorded_model(step)
        if recorded is None:
            return False, f"{osp.join(step.folder, TESTED_MODEL)} is missing: which model it tested is unknown"
        if recorded != trained_model(step.model_dir):
            return False, "its training run was run again since, the result is of the old model"
    return True, ""


def last_epoch(model_dir):
    """The last saved epoch of a training run (the protocols test the last epoch), or None."""
    epochs = [e for e in (epoch_of(osp.basename(f)) for f in glob.glob(osp.join(model_dir, "*", EPOCH_FILE_GLOB)))
              if e is not None]
    return max(epochs) if epochs else None


def command(step, python, data):
    dataset, cfg, seed = step.options
    cmd = python + ["train.py", "--root", data, "--seed", str(seed), "--trainer", step.trainer,
                    "--dataset-config-file", dataset_config(dataset),
                    "--config-file", layout.trainer_config(step.trainer, cfg),
                    "--output-dir", step.folder]
    if step.trainer in EVAL_ONLY:
        cmd.append("--eval-only")
    elif step.model_dir:
        epoch = last_epoch(step.model_dir)
        if epoch is None:
            raise FileNotFoundError(f"no {EPOCH_FILE} checkpoint in {step.model_dir}/*/")
        cmd += ["--eval-only", "--model-dir", step.model_dir, "--load-epoch", str(epoch)]
    return cmd + rerun_flags(step.folder) + protocol_options(step)


# ---------------------------------------------------------------- running

class Child:
    """The running train.py, so that SIGTERM / Ctrl-C stop it before this runner exits."""
    proc = None


def launch(step, python, data):
    """Run one step under the sweep's per-run lock (runs/launcher.py); returns (status, detail) with
    status done | failed | busy (another process runs it) | skipped (it finished meanwhile)."""
    try:
        cmd = command(step, python, data)
    except FileNotFoundError as exc:
        return "failed", str(exc)
    with run_lock(step.folder) as lock_file:
        if lock_file is None:
            return "busy", "another process is running it; run again when it has finished"
        if finished(step, data)[0]:
            return "skipped", "another process finished it meanwhile"
        return _run_locked(step, cmd, python, lock_file, data)


def _run_locked(step, cmd, python, lock_file, data):
    start = time.time()
    tested = trained_model(step.model_dir) if step.model_dir and step.trainer not in EVAL_ONLY else None
    try:
        Child.proc = subprocess.Popen(cmd, pass_fds=(lock_file.fileno(),))
    except OSError as exc:
        return "failed", f"cannot start {shlex.join(python)}: {exc}"
    rc = Child.proc.wait()
    Child.proc = None
    took = time.time() - start
    if rc != 0:
        return "failed", f"exit {rc} after {took:.0f} s; see {osp.join(step.folder, layout.LOG_FILE)}"
    if tested is not None:
        atomic_write_json(osp.join(step.folder, TESTED_MODEL), tested, indent=1)
    done, why = finished(step, data)
    if not done:
        return "failed", f"exit 0 but {why or 'no results.json in ' + step.folder}"
    return "done", f"{took:.1f} s"


def run_steps(steps, python, data):
    """Run or skip every step in order; a test waits for its training run. Returns the exit code."""
    status = {}
    total = len(steps)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for i, step in enumerate(steps, 1):
            prefix = f"[{i}/{total}] {step.label} ..."
            done, why = finished(step, data)
            if done:
                status[step.folder] = "skipped"
                print(f"{prefix} skip (results.json exists)", flush=True)
                continue
            if step.model_dir and status.get(step.model_dir) not in ("done", "skipped"):
                status[step.folder] = "failed"
                print(f"{prefix} not run (its training run {step.model_dir} did not finish)",
                      flush=True)
                continue
            print(f"{prefix} running" + (f" again: {why}" if why else ""), flush=True)
            state, detail = launch(step, python, data)
            status[step.folder] = "failed" if state == "busy" else state
            shown = {"done": "done", "skipped": "skip", "busy": "BUSY"}.get(state, "FAILED")
            print(f"{prefix} {shown} ({detail})", flush=True)
    except KeyboardInterrupt:
        if Child.proc is not None and Child.proc.poll() is None:
            Child.proc.terminate()
            try:
                Child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                Child.proc.kill()
                Child.proc.wait()
        print("interrupted: the running run was stopped; run the same command again to resume",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = {s: sum(1 for v in status.values() if v == s) for s in ("done", "failed", "skipped")}
    print(f"summary: {total} runs: done {counts['done']} / failed {counts['failed']} / skipped "
          f"{counts['skipped']}", flush=True)
    failed = [s.folder for s in steps if status.get(s.folder) == "failed"]
    if failed:
        print("failed or not run:\n" + "".join(f"  {f}\n" for f in failed), end="", flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------- entry points

USAGE = {"base2new": "bash scripts/base2new.sh METHOD DATASET [CFG] [KEY VALUE ...] [--dry-run]",
         "xd": "bash scripts/xd.sh METHOD [CFG] [KEY VALUE ...] [--dry-run]"}
PROTOCOL_KEYS = {"DATASET.SUBSAMPLE_CLASSES": "the protocol (base2new: base for training, new for its test)",
                 "DATASET.NUM_SHOTS": f"the protocol ({PROTOCOL_SHOTS} shots, as published)"}


def dry_run(steps, python, data):
    """--dry-run: what each step would do, with its command; nothing is launched or written."""
    todo = 0
    for i, step in enumerate(steps, 1):
        done, why = finished(step, data)
        prefix = f"[{i}/{len(steps)}] {step.label} ..."
        todo += not done
        try:
            shown = shlex.join(command(step, python, data))
        except FileNotFoundError:  # a test of a training run not run yet: its last epoch is unknown until then
            shown = f"after its training run {step.model_dir}"
        print(f"{prefix} skip (results.json exists)" if done else f"{prefix} would run ({why or 'new'}): {shown}")
    print(f"dry run: {todo} would run, {len(steps) - todo} skipped")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in USAGE or any(a in ("-h", "--help") for a in argv):
        print(__doc__, file=sys.stderr)
        return 0 if any(a in ("-h", "--help") for a in argv) else 2
    protocol, args = argv[0], [a for a in argv[1:] if a != "--dry-run"]
    try:
        needed = 2 if protocol == "base2new" else 1
        positional, opts = split_arguments(args, needed, f"usage: {USAGE[protocol]}", PROTOCOL_KEYS)
        trainer = resolve_trainer(positional[0])
        if protocol == "base2new":
            check_scores_unseen_classes(trainer)
        cfg = positional[needed] if len(positional) > needed else DEFAULT_CFG
        seeds = parse_seeds(os.environ.get("SEEDS") or DEFAULT_SEEDS)
        settings = Settings()
        python, data, output = settings.python, settings.data, settings.output
        if protocol == "base2new":
            datasets = [positional[1]]
            steps = base2new_steps(trainer, positional[1], cfg, seeds, output, opts)
        else:
            targets = xd_targets(trainer, os.environ.get("XD_TARGETS"))  # a per-class head: the variants only
            datasets = [XD_SOURCE] + targets
            steps = xd_steps(trainer, cfg, seeds, output, targets, opts)
        check_configs(trainer, cfg, datasets)
        check_opts(opts, settings)
    except (UsageError, FileNotFoundError) as exc:  # FileNotFoundError: no dataset catalogue
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    if "--dry-run" in argv[1:]:
        return dry_run(steps, python, data)
    return run_steps(steps, python, data)


if __name__ == "__main__":
    sys.exit(main())
