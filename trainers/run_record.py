"""What identifies a run: its protocol config (the merged config without ``PROTOCOL_EXCLUDED``), its hash, and
the keys where two configs differ; ``run.json`` in the run folder holds the same record as every checkpoint.

Resuming a run or reusing its folder with another protocol config is refused with the differing keys named
(trainers/run_folders.py, trainers/checkpoints.py).
"""
from __future__ import annotations

import hashlib
import json
import os.path as osp
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.protocol_keys import PROTOCOL_EXCLUDED, is_excluded  # the keys never compared (shared with results/)

if TYPE_CHECKING:
    from yacs.config import CfgNode

RUN_FILE = "run.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (unreadable, from another run); train.py prints it as one ERROR line."""


# ---- the protocol config -----------------------------------------------------------------------------
def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted key: json-normal value} of a yacs config (tuples become lists)."""
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.loads(json.dumps(value, default=str))
    return out


def protocol_config(cfg: CfgNode) -> dict[str, Any]:
    """The merged config without the keys that do not affect the protocol."""
    return {k: v for k, v in flatten(cfg).items() if not is_excluded(k)}


def config_hash(protocol: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]


def config_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Keys whose value differs, as "KEY: recorded -> current" (keys this code added since are not compared)."""
    return [f"{k}: {recorded[k]!r} -> {current.get(k, '<absent>')!r}" for k in sorted(recorded)
            if not is_excluded(k) and current.get(k, "<absent>") != recorded[k]]


def check_same_protocol(recorded: Mapping[str, Any], cfg: CfgNode, where: str) -> None:
    """Raise CheckpointError naming the keys where ``cfg`` differs from the ``recorded`` protocol config."""
    diffs = config_differences(recorded, protocol_config(cfg))
    if diffs:
        raise CheckpointError(
            f"{where} was made with another config; resuming would silently change the protocol. Differing "
            f"keys (recorded -> now): {'; '.join(diffs)}. Rerun with the recorded settings, or use another "
            f"--output-dir for the new settings (keys never compared: {', '.join(PROTOCOL_EXCLUDED)}).")


def check_same_data(recorded: Mapping[str, Any], current: Mapping[str, Any], where: str) -> None:
    """Raise CheckpointError when the checkpoint recorded other data than the run's (docs/data-identity.md): a
    model is never continued, or re-evaluated as finished, on data it was not trained on."""
    keys = sorted(set(recorded) | set(current))
    differ = [f"{k} {recorded.get(k, '<absent>')} -> {current.get(k, '<absent>')}" for k in keys
              if recorded.get(k) != current.get(k)]
    if differ:
        raise CheckpointError(
            f"{where} was trained on other data than this run's ({'; '.join(differ)}). Move that run folder away "
            f"(or pass another --output-dir) to train on the current data.")


def recorded_config(output_dir: str) -> tuple[str, dict[str, Any]] | tuple[None, None]:
    """(file, protocol config) of the run in ``output_dir``: run.json, else config.yaml (older runs)."""
    import yaml

    for name in (RUN_FILE, "config.yaml"):
        path = osp.join(output_dir, name)
        if not osp.isfile(path):
            continue
        try:
            with open(path) as f:
                data = json.load(f)["config"] if name == RUN_FILE else flatten(yaml.safe_load(f) or {})
        except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
            raise CheckpointError(f"{path} cannot be read ({err}). Delete it if the run folder is yours to "
                                  f"reuse, or pass another --output-dir.") from err
        return path, data
    return None, None
