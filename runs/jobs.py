"""What one run of the runner is (a Job), the user's settings, name checks and train.py's command line."""
from __future__ import annotations

import os
import os.path as osp
import re
import shlex
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import yaml

from engine.names import did_you_mean

from . import catalogue, layout, options

if TYPE_CHECKING:
    from .catalogue import Method

DEFAULT_CFG = "vit_b16"
DEFAULT_SEEDS = "1 2 3"
CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")

# method: script name (ar); opts: trailing KEY VALUE pairs for train.py, as a tuple
Job = namedtuple("Job", "method dataset shots cfg seed opts", defaults=((),))


class UsageError(ValueError):
    """Bad names or values given by the user; raised before anything is launched."""


class Settings:
    """Environment of a runner process (what tests override through PYTHON, DATA, OUTPUT)."""

    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self.python_raw = env.get("PYTHON") or "python"
        self.python = shlex.split(self.python_raw)
        if not self.python:
            raise UsageError("PYTHON is set but empty; unset it or name an interpreter")
        self.data = env.get("DATA") or "./data"
        self.output = env.get("OUTPUT") or "output"


def choices_msg(kind: str, name: str, available: Sequence[str], where: str) -> str:
    msg = f"unknown {kind} '{name}'"
    msg += did_you_mean(name, available)
    listing = ", ".join(available) if available else "nothing"
    return f"{msg}; {where} has: {listing}"


def methods() -> dict[str, Method]:
    """{script name: catalogue.Method} of the registered trainers."""
    try:
        return catalogue.load()
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"cannot read the trainer catalogue {catalogue.catalogue_path()} ({err}); "
                         f"rewrite it with: python -m runs.catalogue") from None


def method_info(method: str) -> Method:
    return methods()[method]


def trainer_of(method: str) -> str:
    return method_info(method).trainer


def resolve_method(name: str) -> str:
    """Script name for a method given as script name (ar) or trainer name (AR), any case."""
    known = methods()
    key = name.strip().lower()
    if key in known:
        return key
    for script, method in known.items():
        if method.trainer.lower() == key:
            return script
    raise UsageError(choices_msg("method", name, list(known), "the trainer registry (runs/trainers.json)")
                     + "; after adding a trainer run: python -m runs.catalogue")


def available_datasets() -> list[str]:
    folder = osp.join(layout.CONFIGS, "datasets")
    if not osp.isdir(folder):
        return None
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def dataset_of(config_name: str) -> str:
    """DATASET.NAME that configs/datasets/<config_name>.yaml sets ("" when it sets none)."""
    data = layout.load_yaml(layout.dataset_config(config_name))
    return str((data.get("DATASET") or {}).get("NAME") or "")


def trainable_datasets() -> list[str]:
    """The dataset configs that ``--datasets all`` means: every configs/datasets/*.yaml whose dataset
    can be trained on (test-only ones, the ImageNet variants, are evaluated by scripts/xd.sh)."""
    try:
        test_only = {row.name for row in catalogue.load_datasets().values() if row.test_only}
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    return [name for name in available_datasets() or [] if dataset_of(name) not in test_only]


def available_cfgs(trainer: str) -> list[str]:
    folder = osp.join(layout.CONFIGS, "trainers", trainer)
    if not osp.isdir(folder):
        return []
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def parse_ints(text: str, what: str, minimum: int) -> list[int]:
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


def parse_opts(words: Sequence[str], where: str = "config options",
               runner_keys: Iterable[str] | None = None) -> tuple[str, ...]:
    """Trailing KEY VALUE pairs -> tuple; keys are upper-case dotted config keys that the runner does not set
    itself (``runner_keys``: more such keys, {key: what sets it})."""
    words = list(words)
    if len(words) % 2:
        raise UsageError(f"{where} must be KEY VALUE pairs, got an odd number: {' '.join(words)}")
    try:
        options.check_runner_keys(words[::2], runner_keys)
    except options.OptionError as err:
        raise UsageError(f"{where}: {err}") from None
    for key in words[::2]:
        if not CONFIG_KEY.match(key):
            raise UsageError(f"{where}: '{key}' is not a config key (upper-case dotted, e.g. OPTIM.MAX_EPOCH)")
    return tuple(words)


def starts_options(word: str) -> bool:
    """Whether a word after the positional arguments is the first KEY of the KEY VALUE options."""
    return bool(CONFIG_KEY.match(word)) or word in options.RUNNER_KEYS


def split_arguments(args: Sequence[str], needed: int, usage: str,
                    runner_keys: Iterable[str] | None = None) -> tuple[Sequence[str], tuple[str, ...]]:
    """(positional arguments, KEY VALUE options) as scripts/method.sh splits them: ``needed`` positional
    arguments, then an optional CFG unless the next word is already a KEY, then the options."""
    positional = args[:needed + 1]
    if len(positional) == needed + 1 and starts_options(positional[needed]):
        positional = positional[:needed]
    if len(positional) < needed or any(a.startswith("-") for a in positional):
        raise UsageError(usage)
    return positional, parse_opts(args[len(positional):], "config options", runner_keys)


def check_opts(opts: Sequence[str], settings: Settings) -> None:
    """The options' keys, types and values, by one train.py --check-opts call (runs/options.py)."""
    try:
        options.check_with_train_py(settings.python, list(opts))
    except options.OptionError as err:
        raise UsageError(f"config options: {err}") from None


def config_files(job: Job) -> list[str]:
    return [layout.dataset_config(job.dataset), layout.trainer_config(trainer_of(job.method), job.cfg)]


def validate(jobs: Iterable[Job]) -> None:
    """Check every name and config file the jobs need; one error listing all problems."""
    datasets = available_datasets()
    if datasets is None:
        raise UsageError(f"no configs/datasets folder in {os.getcwd()}; run the scripts from the "
                         "repository root")
    if not jobs:
        raise UsageError("nothing to run: the sweep is empty")
    problems = []
    for dataset in sorted({j.dataset for j in jobs}):
        if not osp.isfile(layout.dataset_config(dataset)):
            problems.append(choices_msg("dataset", dataset, datasets, "configs/datasets"))
    for method, cfg in sorted({(j.method, j.cfg) for j in jobs}):
        trainer = trainer_of(method)
        if not osp.isfile(layout.trainer_config(trainer, cfg)):
            problems.append(choices_msg(f"config for {trainer}", cfg, available_cfgs(trainer),
                                        f"configs/trainers/{trainer}"))
    for job in jobs:
        if job.shots < 1 and method_info(job.method).trains:
            problems.append(f"{job.method}: shots must be >= 1, got {job.shots}")
            break
    if not problems:  # the done check reads them: a file it cannot read fails here, not mid-sweep
        for path in sorted({p for j in jobs for p in config_files(j)}):
            try:
                layout.load_yaml(path)
            except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
                problems.append(f"cannot read {path}: {err}")
    if problems:
        raise UsageError("; ".join(problems) if len(problems) == 1
                         else "\n  " + "\n  ".join(problems))


def run_dir(job: Job, settings: Settings) -> str:
    return layout.run_dir(settings.output, job.dataset, trainer_of(job.method), job.cfg, job.shots, job.seed,
                          job.opts)


def train_opts(job: Job) -> list[str]:
    """The trailing KEY VALUE pairs train.py gets (the done check expects the same)."""
    # (the 1-shot batch is TRAINER.<NAME>.BATCH_SIZE_1SHOT, applied by the trainer as for train.py)
    return ["DATASET.NUM_SHOTS", str(job.shots)] + list(job.opts)


def rerun_flags(folder: str) -> list[str]:
    """["--overwrite"] for a folder that holds a results.json the runner found not done (stale, of an older
    config file, untrained): the runner's rule is to run it again, and train.py refuses that without the flag."""
    return ["--overwrite"] if osp.isfile(osp.join(folder, layout.RESULTS)) else []


def command(job: Job, settings: Settings) -> list[str]:
    trainer = trainer_of(job.method)
    cmd = settings.python + [
        "train.py", "--root", settings.data, "--seed", str(job.seed), "--trainer", trainer,
        "--dataset-config-file", layout.dataset_config(job.dataset),
        "--config-file", layout.trainer_config(trainer, job.cfg),
        "--output-dir", run_dir(job, settings)]
    if not method_info(job.method).trains:
        cmd.append("--eval-only")
    return cmd + rerun_flags(run_dir(job, settings)) + train_opts(job)


def done(job: Job, settings: Settings) -> layout.Verdict:
    """layout.Verdict for the job's folder."""
    return layout.check_done(run_dir(job, settings), trainer_of(job.method), job.shots, job.seed,
                             config_files(job), train_opts(job), data_root=settings.data)


def label(job: Job, show_cfg: bool = False) -> str:
    text = f"{job.method} {job.dataset} {job.shots} shots seed {job.seed}"
    return f"{text} ({job.cfg})" if show_cfg else text
