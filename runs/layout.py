"""Where a run lives and when it counts as done: the one source for train.py's callers, the sweep,
the tables and predict/plot.

Layout (relative to the repository root, as CoOp's scripts have it)::

    configs/datasets/<dataset>.yaml                 dataset config (its name is the dataset's key)
    configs/trainers/<TRAINER>/<cfg>.yaml           trainer config
    <output>/<dataset>/<TRAINER>/<cfg>_<K>shots/seed<S>/   one run: log.txt, config.yaml, results.json

``<dataset>`` is the dataset config's name, followed by each trailing ``DATASET.*`` option that chooses
other data (every one but NUM_SHOTS): ``imagefolder--imagefolder_dir-pets``, ``digits--digits_shift-tinted``,
``caltech101--subsample_classes-base`` (a value that is not a plain name is cleaned and gets a short hash).
So runs of different ImageFolders, Digits shifts or class subsets never share (and overwrite) a folder.
Folders of older code (``<dataset>`` alone) are read as before.

A run is done when its results.json parses, records the run's trainer, shots and seed, its
recorded config holds every value that the run's two config files and its trailing KEY VALUE options
set, and the data it records (``data_identity`` / ``data_sources``) is the data under the current data
root (runs/data_check.py: the dataset folder exists, the split files have the recorded hashes, an
existing few-shot cache holds the recorded draw). Anything else (missing, empty, corrupt, another run's
file, a config file edited since, an untrained ``--eval-only`` result recording ``"untrained": true``,
no recorded data identity, data not found or changed) is not done, and ``check_done`` says why.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os.path as osp
import re
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from .data_check import data_problems

RESULTS = "results.json"
# Other files of a run folder: train.py's merged config and log; DVP's PRM file; plot_prm's default output.
CONFIG_FILE, LOG_FILE, PRM_FILE, PLOTS_DIR = "config.yaml", "log.txt", "prm.pt", "plots"
CONFIGS = "configs"
# Keys train.py sets from its flags (checked as method/seed) or that may differ between machines.
FLAG_KEYS = frozenset({"OUTPUT_DIR", "DATASET.ROOT", "SEED", "TRAINER.NAME", "RESUME"})

_RUN_DIR = re.compile(r"(?P<cfg>.+)_(?P<shots>-?\d+)shots$")


def load_yaml(path: str) -> Any:
    """A config yaml as train.py's config library reads it (yaml.safe_load; an empty file is {})."""
    with open(path) as f:
        return yaml.safe_load(f) or {}


def dataset_config(dataset: str) -> str:
    return osp.join(CONFIGS, "datasets", f"{dataset}.yaml")


def trainer_config(trainer: str, cfg: str) -> str:
    return osp.join(CONFIGS, "trainers", trainer, f"{cfg}.yaml")


# options that do not choose other data (NUM_SHOTS has its own folder level; ROOT may differ between machines)
SAME_DATA_KEYS = frozenset({"DATASET.NUM_SHOTS", "DATASET.ROOT"})


def _folder_value(value: object) -> str:
    text = str(value)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:40]
    return safe if safe == text else f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}".lstrip("-")


def dataset_folder(dataset: str, opts: Sequence[str] = ()) -> str:
    """The run layout's dataset level: the config name and the DATASET.* options that choose other data."""
    parts = [f"{key[len('DATASET.'):].lower()}-{_folder_value(value)}"
             for key, value in sorted(zip(opts[::2], opts[1::2], strict=False))
             if key.startswith("DATASET.") and key not in SAME_DATA_KEYS]
    return "--".join([dataset] + parts)


def run_dir(output: str, dataset: str, trainer: str, cfg: str, shots: int, seed: int,
            opts: Sequence[str] = ()) -> str:
    """One run's folder; ``opts``: the run's trailing KEY VALUE options (see :func:`dataset_folder`)."""
    return osp.join(output, dataset_folder(dataset, opts), trainer, f"{cfg}_{shots}shots", f"seed{seed}")


RunPath = namedtuple("RunPath", "dataset trainer cfg shots seed")


def parse_run_dir(path: str) -> RunPath | None:
    """RunPath of a folder in the layout (a results.json path works too), or None; ``dataset`` is the
    dataset config's name (without the options of :func:`dataset_folder`)."""
    parts = osp.normpath(path).split(osp.sep)
    if parts and parts[-1] == RESULTS:
        parts = parts[:-1]
    if len(parts) < 4 or not parts[-1].startswith("seed") or not parts[-1][4:].isdigit():
        return None
    match = _RUN_DIR.match(parts[-2])
    if not match:
        return None
    return RunPath(parts[-4].split("--")[0], parts[-3], match["cfg"], int(match["shots"]), int(parts[-1][4:]))


def decode_value(value: Any) -> Any:
    """A config value as yacs decodes it when merging a yaml file or an option: a string holding a
    Python literal becomes that literal (``"(224, 224)"``, ``"1e-5"``), any other string stays."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def expected_config(config_files: Sequence[str], opts: Sequence[str] = ()) -> dict[str, Any]:
    """{dotted key: value} that the config files and the trailing KEY VALUE pairs set, in merge order."""
    expected = {}
    for path in config_files:
        expected.update(_flatten(load_yaml(path)))
    expected.update(zip(opts[::2], opts[1::2], strict=False))
    return {k: _plain(decode_value(v)) for k, v in expected.items() if k not in FLAG_KEYS}


Verdict = namedtuple("Verdict", "done reason")


def read_results(folder: str) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """(results mapping, None) or (None, why it cannot be used)."""
    return read_results_file(osp.join(folder, RESULTS))


def read_results_file(path: str) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """:func:`read_results` of the results file at ``path`` (scripts/make_table.py finds them by walking)."""
    if not osp.isfile(path):
        return None, f"no {RESULTS}"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        return None, f"{RESULTS} cannot be read ({err})"
    if not text.strip():
        return None, f"{RESULTS} is empty"
    try:
        results = json.loads(text)
    except ValueError as err:
        return None, f"{RESULTS} is corrupt ({err})"
    if not isinstance(results, dict):
        return None, f"{RESULTS} is not a JSON object"
    return results, None


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_done(folder: str, trainer: str, shots: int, seed: int, config_files: Sequence[str],
               opts: Sequence[str] = (), data_root: str | None = None) -> Verdict:
    """Verdict(done, reason): is ``folder`` a finished run of exactly this trainer, shots, seed and
    config, computed on the data under ``data_root`` (DATA; None: only that a data identity is
    recorded)? ``reason`` names the first problems found (or says what matched)."""
    results, why = read_results(folder)
    if results is None:
        return Verdict(False, why)
    problems = []
    for key, want in (("method", trainer), ("shots", shots), ("seed", seed)):
        if results.get(key) != want:
            problems.append(f"{key} {_show(results.get(key))}, expected {_show(want)}")
    if results.get("untrained") is True:  # train.py writes it only for a trainer that trains
        problems.append('"untrained": true (--eval-only without --model-dir evaluated the initial parameters)')
    if not isinstance(results.get("accuracy"), (int, float)) or isinstance(results.get("accuracy"), bool):
        problems.append(f"accuracy {_show(results.get('accuracy'))} is not a number")
    recorded = results.get("config")
    if not isinstance(recorded, dict):
        problems.append("no recorded config")
    else:
        flat = _flatten(recorded)
        for key, want in expected_config(config_files, opts).items():
            if key not in flat:
                problems.append(f"{key} not recorded (config sets {_show(want)})")
            elif _plain(flat[key]) != want:
                problems.append(f"{key} {_show(flat[key])}, config sets {_show(want)}")
    if not problems:  # the data check reads files: only for a result that matches otherwise
        problems += data_problems(results, data_root)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return Verdict(False, f"{RESULTS} does not match this run: " + "; ".join(problems[:3]) + more)
    return Verdict(True, f"{RESULTS} matches")
