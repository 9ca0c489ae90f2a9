"""results.json and config.yaml of a run: the files that tables and sweeps read."""
from __future__ import annotations

import os
import platform
import subprocess
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import f1_score

from .data_identity import IDENTITY_KEY, SOURCES_KEY, dataset_folder, dataset_identity, sha256_file, source_record
from .io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from yacs.config import CfgNode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_revision(root: str = REPO_ROOT) -> str | None:
    """The code revision (``<sha>`` or ``<sha>-dirty``), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev else None


def cfg_to_dict(cfg: Any) -> Any:
    """A yacs CfgNode as plain dicts and lists (json-serialisable)."""
    if isinstance(cfg, dict):
        return {k: cfg_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [cfg_to_dict(v) for v in cfg]
    return cfg


def write_config(cfg: CfgNode, output_dir: str) -> None:
    atomic_write_text(os.path.join(output_dir, "config.yaml"), cfg.dump())


def versions() -> dict[str, str | None]:
    """Python, torch and open_clip versions of this run (None for a package that is not installed)."""
    found = {"python": platform.python_version()}
    for name in ("torch", "open_clip"):
        try:
            module = __import__(name)
            found[name] = str(getattr(module, "__version__", "unknown"))
        except ImportError:
            found[name] = None
    return found


def evaluation_summary(y_true: Any, y_pred: Any, lab2cname: dict[int, str]) -> dict[str, Any]:
    """accuracy, macro_f1 and per-class accuracy (percent) from the labels of the last evaluation;
    ``per_class`` is keyed by label (as a string), ``{"name": class name, "accuracy": percent}``, so two
    classes of the same name both appear."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.size == 0:
        return {"accuracy": None, "macro_f1": None, "per_class": {}}
    accuracy = 100.0 * float((y_true == y_pred).mean())
    macro_f1 = 100.0 * float(f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true)))
    per_class = {}
    for label in sorted(lab2cname):
        mask = y_true == label
        if mask.any():
            per_class[str(label)] = {"name": lab2cname[label],
                                     "accuracy": 100.0 * float((y_pred[mask] == label).mean())}
    return {"accuracy": accuracy, "macro_f1": macro_f1, "per_class": per_class}


def trainable_params(trainer: Any) -> int:
    """What the method learns: the trainer's own ``trainable_params`` when it states one (a count that
    gradients do not give, e.g. a fitted head), else the requires_grad parameters of its registered models
    (each counted once); 0 for a method that trains nothing."""
    own = getattr(trainer, "trainable_params", None)
    if own is not None:
        return int(own)
    if not getattr(trainer, "TRAINS", True):
        return 0
    params = {id(p): p.numel() for model in getattr(trainer, "_models", {}).values()
              for p in model.parameters() if p.requires_grad}
    return sum(params.values())


def build_results(cfg: CfgNode, trainer: Any, elapsed_s: float) -> dict[str, Any]:
    """The results.json mapping of a finished run (keys as in docs/architecture)."""
    ev = trainer.evaluator
    summary = evaluation_summary(getattr(ev, "_y_true", []), getattr(ev, "_y_pred", []), trainer.lab2cname)
    results = {
        "method": cfg.TRAINER.NAME,
        "dataset": cfg.DATASET.NAME,
        "backbone": cfg.MODEL.BACKBONE.NAME,
        "shots": int(cfg.DATASET.NUM_SHOTS),
        "seed": int(cfg.SEED),
        "accuracy": summary["accuracy"],
        "macro_f1": summary["macro_f1"],
        "per_class": summary["per_class"],
        "elapsed_s": round(float(elapsed_s), 3),
        "trainable_params": trainable_params(trainer),
        "git": git_revision(),
        "config": cfg_to_dict(cfg),
        "versions": versions(),
    }
    dataset = getattr(getattr(trainer, "dm", None), "dataset", None)
    if dataset is not None:  # what data the numbers come from (engine/data_identity.py)
        results[IDENTITY_KEY] = dataset_identity(dataset)
        # a loader that records no files (a plugin's own DatasetBase): at least its folder must be there
        results[SOURCES_KEY] = list(getattr(dataset, "data_sources", None) or [
            source_record("dataset_dir", dataset_folder(dataset), os.path.abspath(os.path.expanduser(
                cfg.DATASET.ROOT)))])
        # files besides the data that change the numbers (a trainer's description files): content, not path
        for what, path in (getattr(trainer, "identity_files", lambda: [])() or []):
            digest = sha256_file(path)
            results[IDENTITY_KEY][f"{what}_sha256:{os.path.basename(path)}"] = digest
            results[SOURCES_KEY].append({"role": "file", "what": what, "path": os.path.abspath(path), "sha256": digest})
    curve = getattr(trainer, "per_epoch_test", None)
    if curve:
        results["per_epoch_test"] = [float(a) for a in curve]
        results["best_epoch_test_accuracy"] = float(max(curve))
        results["best_epoch_test_note"] = ("best of the per-epoch test accuracies: selected on the test set "
                                           "(reference protocol), not the reported accuracy")
    extra = getattr(trainer, "extra_results", None)
    if callable(extra):
        results.update(extra())
    return results


def write_results(results: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, "results.json")
    atomic_write_json(path, results)
    return path
