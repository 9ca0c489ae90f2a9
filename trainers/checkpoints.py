"""Checkpoints that know what made them, a resumable save every epoch, and the checks that use them.

Every checkpoint of the project's trainers holds, beside Dassl's keys, ``run``: the trainer, backbone and
weights, prompt kind and geometry, class names (label order), shots, seed, the dataset as configured,
the protocol config (the merged config without ``PROTOCOL_EXCLUDED``) and its hash. The run folder gets
the same record as ``run.json``. It is used three ways:

* resume (same OUTPUT_DIR or ``--resume DIR``): a different protocol config is an error naming the keys;
* ``--eval-only --model-dir``: another trainer, backbone, weights or prompt is an error; another class
  set follows the trainer's declared ``CLASS_TRANSFER`` policy (or one clear error when it has none);
* a checkpoint without the record (older code) still loads for the same classes, with a warning that
  is printed and kept in results.json.

Only Dassl's public trainer methods are overridden, so this works on both backends.
"""
import contextlib
import contextvars
import fnmatch
import glob
import hashlib
import json
import os
import os.path as osp
import pickle
import zipfile

from engine import distributed, load_checkpoint, save_checkpoint
from engine.checkpoint_files import EPOCH_FILE, model_file
from engine.data_identity import IDENTITY_KEY, dataset_identity
from engine.extend import register_config
from engine.io import atomic_write_json
from engine.protocol_keys import PROTOCOL_EXCLUDED, is_excluded  # the keys never compared (shared with results/)

from .loading import SafeLoadModel

RUN_FILE = "run.json"
# What must match between a checkpoint and the model it is evaluated with (the class set has its policy).
IDENTITY_KEYS = ("trainer", "backbone", "prompt")


@register_config
def _checkpoint_keys(cfg):
    cfg.TRAIN.RESUME_EVERY_EPOCH = True  # project trainers: resumable checkpoint after every epoch (latest kept)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (unreadable, from another run); train.py prints it as one ERROR line."""


# ---- the protocol config -----------------------------------------------------------------------------
def flatten(node, prefix=""):
    """{dotted key: json-normal value} of a yacs config (tuples become lists)."""
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.loads(json.dumps(value, default=str))
    return out


def protocol_config(cfg):
    """The merged config without the keys that do not affect the protocol."""
    return {k: v for k, v in flatten(cfg).items() if not is_excluded(k)}


def config_hash(protocol):
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]


def config_differences(recorded, current):
    """Keys whose value differs, as "KEY: recorded -> current" (keys this code added since are not compared)."""
    return [f"{k}: {recorded[k]!r} -> {current.get(k, '<absent>')!r}" for k in sorted(recorded)
            if not is_excluded(k) and current.get(k, "<absent>") != recorded[k]]


def check_same_protocol(recorded, cfg, where):
    """Raise CheckpointError naming the keys where ``cfg`` differs from the ``recorded`` protocol config."""
    diffs = config_differences(recorded, protocol_config(cfg))
    if diffs:
        raise CheckpointError(
            f"{where} was made with another config; resuming would silently change the protocol. Differing "
            f"keys (recorded -> now): {'; '.join(diffs)}. Rerun with the recorded settings, or use another "
            f"--output-dir for the new settings (keys never compared: {', '.join(PROTOCOL_EXCLUDED)}).")


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


def evaluated_record(model_dir, epoch=None):
    """(path, run record) of the checkpoint ``--eval-only --model-dir`` loads (the first model's; epoch None:
    model-best), or (path or None, None); read before the model is built (DVP_CLS takes its v from it)."""
    found = sorted(glob.glob(osp.join(model_dir, "*", model_file(epoch))))
    if not found:
        return None, None
    record = read_checkpoint(found[0]).get("run")
    return found[0], record if isinstance(record, dict) else None


# The record of the checkpoint being evaluated, while train.py builds the trainer (see ``evaluating``).
_EVALUATED = contextvars.ContextVar("evaluated_checkpoint", default=(None, None))


@contextlib.contextmanager
def evaluating(path, record):
    """Within: ``evaluated_checkpoint()`` is (path, record) of the checkpoint the trainer will load."""
    token = _EVALUATED.set((path, record))
    try:
        yield
    finally:
        _EVALUATED.reset(token)


def evaluated_checkpoint():
    return _EVALUATED.get()


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


def recorded_config(output_dir):
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


# ---- the trainer mixin -------------------------------------------------------------------------------
class RunCheckpoints(SafeLoadModel):
    """Checkpoint behaviour of the project's trainers (mix in before TrainerX).

    A subclass says what its prompt is (``prompt_identity``) and how it evaluates other classes than it
    was trained on: ``CLASS_TRANSFER`` states the policy (recorded in results.json); empty means the
    method cannot score unseen classes and says so in one error. ``load_other_classes`` does the work.
    """

    CLASS_TRANSFER = ""
    TRAINS = True
    # What one run costs, for packing short runs into one SLURM task (runs/slurm_pack.py): "backprop"
    # (gradients through CLIP every epoch), "features" (frozen CLIP features, a light head), "eval" (one test pass).
    RUN_COST = "backprop"

    # ---- what a trainer defines ------------------------------------------------------------------
    def prompt_identity(self):
        """Kind and geometry of what is learned (must match between a checkpoint and its evaluation)."""
        raise NotImplementedError

    def load_other_classes(self, name, checkpoint, trained):
        """Load ``checkpoint`` into model ``name`` built for other classes than ``trained``."""
        raise NotImplementedError

    def check_other_classes(self, trained, evaluated):
        """Raise if this configuration cannot score ``evaluated`` after training on ``trained``."""
        if not self.CLASS_TRANSFER:
            raise CheckpointError(
                f"{self.cfg.TRAINER.NAME} cannot score classes other than those it was trained on (trained: "
                f"{len(trained)} classes, evaluated: {len(evaluated)}, of which "
                f"{len(set(evaluated) - set(trained))} unseen). Evaluate on the training classes.")

    # ---- the record ------------------------------------------------------------------------------
    def classnames_in_label_order(self):
        return [self.lab2cname[i] for i in range(self.num_classes)]

    def run_identity(self):
        cfg = self.cfg
        flat = flatten(cfg)  # once: the protocol config and the dataset keys both come from it
        protocol = {k: v for k, v in flat.items() if not is_excluded(k)}
        if not hasattr(self, "_git_revision"):
            from engine.results import git_revision

            self._git_revision = git_revision()
        return {
            "trainer": cfg.TRAINER.NAME,
            "backbone": {"name": cfg.MODEL.BACKBONE.NAME, "weights": cfg.MODEL.BACKBONE.get("WEIGHTS", ""),
                         "pretrained": bool(cfg.MODEL.BACKBONE.get("PRETRAINED", True))},
            "prompt": self.prompt_identity(),
            "classnames": self.classnames_in_label_order(),
            "shots": int(cfg.DATASET.NUM_SHOTS),
            "seed": int(cfg.SEED),
            "dataset": {k[len("DATASET."):]: v for k, v in flat.items() if k.startswith("DATASET.")},
            "config": protocol,
            "config_hash": config_hash(protocol),
            "excluded_keys": list(PROTOCOL_EXCLUDED),
            "git": self._git_revision,
            IDENTITY_KEY: dataset_identity(self.dm.dataset),  # the data it trained on (docs/data-identity.md)
        }

    def write_run_record(self, extra=None):
        """run.json in OUTPUT_DIR: the record every checkpoint of this run holds (+ ``extra``)."""
        if distributed.is_main_process():
            record = self.run_identity()
            record.update(extra or {})
            atomic_write_json(osp.join(self.output_dir, RUN_FILE), record)

    # ---- saving ----------------------------------------------------------------------------------
    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        if not distributed.is_main_process():
            return  # one writer per run
        record = self.run_identity()
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {"state_dict": self._models[name].state_dict(), "epoch": epoch + 1,
                     "optimizer": optim.state_dict() if optim is not None else None,
                     "scheduler": sched.state_dict() if sched is not None else None,
                     "val_result": val_result, "run": record}
            save_checkpoint(state, osp.join(directory, name), is_best=is_best, model_name=model_name)

    def after_epoch(self):
        super().after_epoch()  # Dassl: the best-val save, every CHECKPOINT_FREQ epochs, the last epoch
        if not self.cfg.TRAIN.get("RESUME_EVERY_EPOCH", True):
            return
        done = self.epoch + 1
        freq = int(self.cfg.TRAIN.CHECKPOINT_FREQ)
        if not (done == self.max_epoch or (freq > 0 and done % freq == 0)):
            self.save_model(self.epoch, self.output_dir)
        self.prune_checkpoints(done)

    def prune_checkpoints(self, latest):
        """Remove the epoch saves before ``latest`` that TRAIN.CHECKPOINT_FREQ does not ask to keep."""
        if not distributed.is_main_process():
            return
        from .run_loading import saved_epochs

        freq = int(self.cfg.TRAIN.CHECKPOINT_FREQ)
        for name in self.get_model_names():
            for epoch in saved_epochs(self.output_dir, name):
                if epoch < latest and not (freq > 0 and epoch % freq == 0):
                    os.remove(osp.join(self.output_dir, name, model_file(epoch)))

    # ---- resuming --------------------------------------------------------------------------------
    def before_train(self):
        self.check_training_cfg(self.cfg)
        super().before_train()  # resumes (resume_model_if_exist) when a checkpoint is there
        self.write_run_record()

    @classmethod
    def check_training_cfg(cls, cfg):
        """Settings that make training meaningless: one clear error before any work."""
        if not cls.TRAINS:
            return
        if int(cfg.DATASET.NUM_SHOTS) < 1:
            raise ValueError(f"DATASET.NUM_SHOTS = {cfg.DATASET.NUM_SHOTS} would train {cfg.TRAINER.NAME} on the "
                             f"whole training set, which is not the few-shot protocol. Set DATASET.NUM_SHOTS to "
                             f"1, 2, 4, 8 or 16.")
        if int(cfg.OPTIM.MAX_EPOCH) < 1:
            raise ValueError(f"OPTIM.MAX_EPOCH = {cfg.OPTIM.MAX_EPOCH} trains nothing. Set it to at least 1 (or "
                             f"evaluate a trained run with --eval-only --model-dir DIR).")

    def resume_model_if_exist(self, directory):
        names = self.get_model_names()
        present = [osp.exists(osp.join(directory, n, "checkpoint")) for n in names]
        if not any(present):
            if self.cfg.RESUME:
                check_resume_folder(directory, self.cfg, required=True)
            print("No checkpoint found, train from scratch")
            return 0
        if not all(present):
            missing = [n for n, p in zip(names, present) if not p]
            raise CheckpointError(f"{directory} holds checkpoints of only some models ({', '.join(missing)} has "
                                  f"none). Delete the folder's model sub-folders to train from scratch.")
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch = 0
        for name in names:
            path = read_pointer(osp.join(directory, name))
            checkpoint = read_checkpoint(path)
            record = checkpoint.get("run")
            if record:
                check_same_protocol(record["config"], self.cfg, f"The checkpoint {path}")
            else:
                self.note_unverified(path)
            print(f'Loading checkpoint from "{path}"')
            self._models[name].load_state_dict(checkpoint["state_dict"])
            if self._optims[name] is not None and checkpoint.get("optimizer"):
                self._optims[name].load_state_dict(checkpoint["optimizer"])
            if self._scheds[name] is not None and checkpoint.get("scheduler"):
                self._scheds[name].load_state_dict(checkpoint["scheduler"])
            start_epoch = checkpoint["epoch"]
            print(f"Previous epoch: {start_epoch}")
        return start_epoch

    # ---- evaluating a saved run --------------------------------------------------------------------
    def note_unverified(self, path):
        msg = (f"WARNING: {path} was written without a run record (older code): its trainer, backbone, prompt "
               f"and class names could not be verified; it is loaded as a checkpoint of this configuration.")
        print(msg)
        self.load_warnings = getattr(self, "load_warnings", []) + [msg]

    def check_identity(self, record, path):
        """Trainer, backbone (and weights) and prompt (kind and geometry) must be those of the checkpoint."""
        mine = self.run_identity()
        for key in IDENTITY_KEYS:
            saved, now = record.get(key), mine[key]
            if saved == now:
                continue
            if isinstance(saved, dict) and isinstance(now, dict):
                parts = [f"{k} {saved.get(k)!r} here {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                         if saved.get(k) != now.get(k)]
                what = f"another {key} ({'; '.join(parts)})"
            else:
                what = f"{key} {saved!r}, this run uses {now!r}"
            raise CheckpointError(
                f"{path} was made with {what}. Evaluate it with the settings it was trained with (its run.json "
                f"and config.yaml record them), or train a run with these settings.")

    def load_model(self, directory, epoch=None):
        """Load each model's checkpoint after checking what made it; record the class policy applied."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        evaluated = self.classnames_in_label_order()
        for name in self.get_model_names():
            path = osp.join(directory, name, model_file(epoch))
            if not osp.exists(path):
                raise FileNotFoundError(f"No model at {path}. Pass the OUTPUT_DIR of a training run of "
                                        f"{self.cfg.TRAINER.NAME} and one of its saved epochs (--load-epoch).")
            checkpoint = read_checkpoint(path)
            print(f"Load {path} to {name} (epoch={checkpoint['epoch']})")
            record = checkpoint.get("run")
            self.loaded_run = record  # what made the loaded checkpoint (a trainer may need more of it)
            if not record:
                self.note_unverified(path)
                self.load_same_classes(name, checkpoint, verified=False)
                self.class_policy = {"trained": None, "evaluated": evaluated, "policy": "unverified"}
                continue
            self.check_identity(record, path)
            trained = list(record["classnames"])
            if trained == evaluated:
                self.load_same_classes(name, checkpoint, verified=True)
                policy = "same classes: the checkpoint as trained"
            else:
                self.check_other_classes(trained, evaluated)
                self.load_other_classes(name, checkpoint, trained)
                policy = self.CLASS_TRANSFER
                print(f"Class set differs from training ({len(trained)} trained, {len(evaluated)} evaluated, "
                      f"{len(set(evaluated) - set(trained))} unseen): {policy}")
            self.class_policy = {"trained": trained, "evaluated": evaluated, "policy": policy}
        print(f"Trained classes: {self.class_policy['trained']}; evaluated classes: {evaluated}; "
              f"policy: {self.class_policy['policy']}")

    def load_same_classes(self, name, checkpoint, verified):
        self._models[name].load_state_dict(checkpoint["state_dict"])

    def loaded_results(self):
        """What results.json says about the loaded checkpoint (classes, policy, warnings)."""
        out = {}
        if getattr(self, "class_policy", None):
            out["classes"] = dict(self.class_policy)
        if getattr(self, "load_warnings", None):
            out["warnings"] = list(self.load_warnings)
        return out
