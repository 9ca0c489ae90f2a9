"""The checks train.py makes on run folders before any work, and reading the checkpoint files in them.

A folder holding another run's results or checkpoints is never reused; every checkpoint a run would resume
from must be readable and of its protocol; ``--eval-only`` of a trainer whose checkpoints hold no record is
checked against the run folder's recorded config. Each failure is one CheckpointError (one ERROR line).
"""
import fnmatch
import os
import os.path as osp
import pickle
import zipfile

from engine import load_checkpoint
from engine.checkpoint_files import EPOCH_FILE

from .run_record import (
    CheckpointError,
    check_same_protocol,
    config_differences,
    flatten,
    protocol_config,
    recorded_config,
)


# ---- reading checkpoints -----------------------------------------------------------------------------
def read_pointer(model_dir):
    """The file named in ``model_dir/checkpoint`` (Dassl's pointer to the latest save); clear errors."""
    pointer = osp.join(model_dir, "checkpoint")
    with open(pointer) as f:
        name = f.read().strip().splitlines()
    if not name or not name[0].strip():
        raise CheckpointError(f"The checkpoint pointer {pointer} is empty (it should name the latest "
                              f"{EPOCH_FILE}). Write that file name into it, or delete the folder "
                              f"{model_dir} to train from scratch.")
    path = osp.join(model_dir, name[0].strip())
    if not osp.isfile(path):
        raise CheckpointError(f"The checkpoint pointer {pointer} names {name[0].strip()}, which does not exist. "
                              f"Write the name of an existing {EPOCH_FILE} into it, or delete {model_dir} "
                              f"to train from scratch.")
    return path


def read_checkpoint(path):
    """The checkpoint dict, or one CheckpointError for a zero-byte, truncated or corrupt file."""
    if osp.isfile(path) and osp.getsize(path) == 0:
        raise CheckpointError(f"The checkpoint {path} is empty (0 bytes): its run was killed while writing, or "
                              f"the file was damaged. Delete it (and point the `checkpoint` file at an older "
                              f"save) or retrain.")
    try:
        checkpoint = load_checkpoint(path)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, ImportError, IndexError, KeyError, TypeError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CheckpointError(f"The checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is "
                              f"corrupt or not a checkpoint of this toolkit. Delete it or retrain.") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a model checkpoint (no state_dict). Pass a folder written by train.py.")
    return checkpoint


def pointer_dirs(directory):
    """Sub-folders of a run folder that hold a ``checkpoint`` pointer (one per registered model)."""
    if not osp.isdir(directory):
        return []
    return [osp.join(directory, d) for d in sorted(os.listdir(directory))
            if osp.isfile(osp.join(directory, d, "checkpoint"))]


def check_resume_folder(directory, cfg, required=False):
    """Before any work: every checkpoint train.py would resume from is readable and of this protocol.

    ``required`` (``--resume DIR``): a folder without a checkpoint is an error, not a fresh start.
    """
    dirs = pointer_dirs(directory)
    if not dirs and required:
        raise CheckpointError(f"--resume {directory}: no checkpoint there (expected <model name>/checkpoint and "
                              f"{EPOCH_FILE} inside it). Pass the OUTPUT_DIR of an interrupted run, or "
                              f"drop --resume to train from scratch.")
    for model_dir in dirs:
        path = read_pointer(model_dir)
        record = read_checkpoint(path).get("run")
        if record:
            check_same_protocol(record["config"], cfg, f"The checkpoint {path}")


def check_run_folder(output_dir, cfg):
    """Before any work: a folder holding another run's results or checkpoints is never reused."""
    if not (osp.isfile(osp.join(output_dir, "results.json")) or pointer_dirs(output_dir)):
        return  # nothing there to protect (a run that stopped before its first save)
    path, recorded = recorded_config(output_dir)
    diffs = config_differences(recorded, protocol_config(cfg)) if recorded else []
    if diffs:
        raise CheckpointError(
            f"The output folder {output_dir} holds a run made with another config ({path}); it is never "
            f"overwritten. Differing keys (recorded -> now): {'; '.join(diffs)}. Pass another --output-dir, "
            f"or rerun with the recorded settings to resume it.")


# What identifies the model and the classes of a run, for trainers whose checkpoints hold no record.
UNRECORDED_IDENTITY = ("TRAINER.NAME", "MODEL.BACKBONE.*", "DATASET.*")
UNRECORDED_FREE = ("DATASET.ROOT", "DATASET.NUM_SHOTS")  # where the data lies; the training sample size


def check_unrecorded_eval(model_dir, cfg):
    """--eval-only of a trainer that is not a RunCheckpoints (e.g. a plugin on plain TrainerX): its checkpoints
    say nothing about the classes they score, so the run folder's recorded config must give the same trainer,
    backbone and dataset settings (class set included); anything else is refused, never loaded silently."""
    path, recorded = recorded_config(model_dir)
    trainer = cfg.TRAINER.NAME
    if recorded is None:
        raise CheckpointError(
            f"{model_dir} has no run.json or config.yaml, and {trainer}'s checkpoints record nothing about what "
            f"made them, so evaluating it cannot be checked against its trained classes. Evaluate a run folder "
            f"written by train.py (it writes config.yaml), or make {trainer} a trainers.checkpoints.RunCheckpoints.")
    now = flatten(cfg)

    def identity(config):
        return {k: v for k, v in config.items()
                if any(fnmatch.fnmatchcase(k, p) for p in UNRECORDED_IDENTITY) and k not in UNRECORDED_FREE}

    saved, current = identity(recorded), identity(now)
    diffs = [f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
             if saved.get(k) != current.get(k)]
    if diffs:
        raise CheckpointError(
            f"{trainer} does not record its classes in its checkpoints, so it can only be evaluated with the "
            f"trainer, backbone and dataset settings of its run ({path}). Differing keys (recorded -> now): "
            f"{'; '.join(diffs)}. Evaluate with those settings, or make {trainer} a "
            f"trainers.checkpoints.RunCheckpoints with a CLASS_TRANSFER policy.")
