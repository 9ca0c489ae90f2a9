"""Checkpoints that know what made them, a resumable save every epoch, and the checks that use them.

Every checkpoint of the project's trainers holds, beside Dassl's keys, ``run``: the trainer, backbone and
weights, prompt kind and geometry, class names (label order), shots, seed, the dataset as configured,
the protocol config (trainers/run_record.py) and its hash. The run folder gets the same record as
``run.json``. It is used three ways:

* resume (same OUTPUT_DIR or ``--resume DIR``): a different protocol config is an error naming the keys;
* ``--eval-only --model-dir``: another trainer, backbone, weights or prompt is an error; another class
  set follows the trainer's declared ``CLASS_TRANSFER`` policy (or one clear error when it has none);
* a checkpoint without the record (older code) still loads for the same classes, with a warning that
  is printed and kept in results.json.

Every checkpoint also holds the process-wide random number generators' states (engine/rng_states.py), which
a resume restores, so a trainer that draws its order and augmentations from them resumes exactly.

Only Dassl's public trainer methods are overridden, so this works on both backends.
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine import distributed, rng_states, save_checkpoint
from engine.checkpoint_files import model_file
from engine.class_ids import class_ids
from engine.data_identity import IDENTITY_KEY, dataset_identity
from engine.extend import register_config
from engine.io import atomic_write_json
from engine.protocol_keys import PROTOCOL_EXCLUDED, is_excluded

from .class_subset import check_same_subset
from .loading import SafeLoadModel
from .run_folders import check_resume_folder, read_checkpoint, read_pointer
from .run_record import RUN_FILE, CheckpointError, check_same_data, check_same_protocol, config_hash, flatten

# What must match between a checkpoint and the model it is evaluated with (the class set has its policy).
if TYPE_CHECKING:
    from yacs.config import CfgNode

IDENTITY_KEYS = ("trainer", "backbone", "prompt")


@register_config
def _checkpoint_keys(cfg: CfgNode) -> None:
    cfg.TRAIN.RESUME_EVERY_EPOCH = True  # project trainers: resumable checkpoint after every epoch (latest kept)


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
    def prompt_identity(self) -> dict[str, Any]:
        """Kind and geometry of what is learned (must match between a checkpoint and its evaluation)."""
        raise NotImplementedError

    def load_other_classes(self, name: str, checkpoint: dict[str, Any], trained: Sequence[str]) -> None:
        """Load ``checkpoint`` into model ``name`` built for other classes than ``trained``."""
        raise NotImplementedError

    def check_other_classes(self, trained: Sequence[str], evaluated: Sequence[str]) -> None:
        """Raise if this configuration cannot score ``evaluated`` after training on ``trained``."""
        if not self.CLASS_TRANSFER:
            raise CheckpointError(
                f"{self.cfg.TRAINER.NAME} cannot score classes other than those it was trained on (trained: "
                f"{len(trained)} classes, evaluated: {len(evaluated)}, of which "
                f"{len(set(evaluated) - set(trained))} unseen). Evaluate on the training classes.")

    # ---- the record ------------------------------------------------------------------------------
    def classnames_in_label_order(self) -> list[str]:
        return [self.lab2cname[i] for i in range(self.num_classes)]

    def run_identity(self) -> dict[str, Any]:
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
            "class_ids": class_ids(self.dm.dataset),  # stable class identities, or None (engine/class_ids.py)
        }

    def write_run_record(self, extra: dict[str, Any] | None = None) -> None:
        """run.json in OUTPUT_DIR: the record every checkpoint of this run holds (+ ``extra``)."""
        if distributed.is_main_process():
            record = self.run_identity()
            record.update(extra or {})
            atomic_write_json(osp.join(self.output_dir, RUN_FILE), record)

    # ---- saving ----------------------------------------------------------------------------------
    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: float | None = None,
                   model_name: str = "") -> None:
        rngs = rng_states.capture_all_ranks()  # every rank calls save_model: a collective, before the return
        if not distributed.is_main_process():
            return  # one writer per run
        record = self.run_identity()
        scaler = getattr(self, "scaler", None)  # fp16 loss scaling (CUDA): its scale is part of the trajectory
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {"state_dict": self._models[name].state_dict(), "epoch": epoch + 1,
                     "optimizer": optim.state_dict() if optim is not None else None,
                     "scheduler": sched.state_dict() if sched is not None else None,
                     "scaler": scaler.state_dict() if scaler is not None else None,
                     "val_result": val_result, "run": record, rng_states.CHECKPOINT_KEY: rngs}
            save_checkpoint(state, osp.join(directory, name), is_best=is_best, model_name=model_name)

    def after_epoch(self) -> None:
        super().after_epoch()  # Dassl: the best-val save, every CHECKPOINT_FREQ epochs, the last epoch
        if not self.cfg.TRAIN.get("RESUME_EVERY_EPOCH", True):
            return
        done = self.epoch + 1
        freq = int(self.cfg.TRAIN.CHECKPOINT_FREQ)
        if not (done == self.max_epoch or (freq > 0 and done % freq == 0)):
            self.save_model(self.epoch, self.output_dir)
        self.prune_checkpoints(done)

    def prune_checkpoints(self, latest: int) -> None:
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
    def before_train(self) -> None:
        self.check_training_cfg(self.cfg)
        super().before_train()  # resumes (resume_model_if_exist) when a checkpoint is there
        self.write_run_record()

    @classmethod
    def check_training_cfg(cls, cfg: CfgNode) -> None:
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

    def resume_model_if_exist(self, directory: str) -> int:
        names = self.get_model_names()
        present = [osp.exists(osp.join(directory, n, "checkpoint")) for n in names]
        if not any(present):
            if self.cfg.RESUME:
                check_resume_folder(directory, self.cfg, required=True)
            print("No checkpoint found, train from scratch")
            return 0
        if not all(present):
            missing = [n for n, p in zip(names, present, strict=False) if not p]
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
                if IDENTITY_KEY in record:  # older checkpoints record no data: resumed with a warning
                    check_same_data(record[IDENTITY_KEY], dataset_identity(self.dm.dataset), f"The checkpoint {path}")
                else:
                    self.note_unverified_data(path)
            else:
                self.note_unverified(path)
            print(f'Loading checkpoint from "{path}"')
            self._models[name].load_state_dict(checkpoint["state_dict"])
            if self._optims[name] is not None and checkpoint.get("optimizer"):
                self._optims[name].load_state_dict(checkpoint["optimizer"])
            if self._scheds[name] is not None and checkpoint.get("scheduler"):
                self._scheds[name].load_state_dict(checkpoint["scheduler"])
            if getattr(self, "scaler", None) is not None and checkpoint.get("scaler"):
                self.scaler.load_state_dict(checkpoint["scaler"])
            start_epoch = checkpoint["epoch"]
            print(f"Previous epoch: {start_epoch}")
        self.restore_rngs(checkpoint, path, start_epoch)
        return start_epoch

    def restore_rngs(self, checkpoint: dict[str, Any], path: str, epoch: int) -> None:
        """Continue with the generator states the run had when it wrote ``checkpoint`` (its sample order and
        augmentations then follow the uninterrupted run's); a checkpoint without them is one warning."""
        why = rng_states.restore_rank(checkpoint.get(rng_states.CHECKPOINT_KEY)) or self.inexact_resume_reason()
        if why:
            self.warn_loaded(f"WARNING: resuming from {path}, which cannot continue the random number generators "
                             f"exactly ({why}): from epoch {epoch + 1} on, sample order and augmentations may "
                             f"differ from an uninterrupted run's.")

    def inexact_resume_reason(self) -> str | None:
        """Why this run's randomness cannot be continued from a checkpoint even with its generator states, or
        None (a trainer whose loader keeps random streams outside the checkpoint says so)."""
        return None

    # ---- evaluating a saved run --------------------------------------------------------------------
    def note_unverified(self, path: str) -> None:
        self.warn_loaded(f"WARNING: {path} was written without a run record (older code): its trainer, backbone, "
                         f"prompt and class names could not be verified; it is loaded as a checkpoint of this "
                         f"configuration.")

    def note_unverified_data(self, path: str) -> None:
        self.warn_loaded(f"WARNING: {path} records no data identity (older code): the data it was trained on "
                         f"could not be compared with this run's.")

    def warn_loaded(self, msg: str) -> None:
        """Print a loading warning and keep it for results.json (``warnings``)."""
        print(msg)
        self.load_warnings = getattr(self, "load_warnings", []) + [msg]

    def check_identity(self, record: dict[str, Any], path: str) -> None:
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

    def load_model(self, directory: str, epoch: int | None = None) -> None:
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
            subset = getattr(self, "class_subset", None)  # a per-class head built for the trained classes
            if subset:
                check_same_subset(subset, record, self.dm.dataset, path)
                self.load_same_classes(name, checkpoint, verified=True)
                policy = subset["policy"]
            elif trained == evaluated:
                check_same_subset(None, record, self.dm.dataset, path)  # same names: the same class ids too
                self.load_same_classes(name, checkpoint, verified=True)
                policy = "same classes: the checkpoint as trained"
            else:
                self.check_other_classes(trained, evaluated)
                self.load_other_classes(name, checkpoint, trained)
                policy = self.CLASS_TRANSFER
                print(f"Class set differs from training ({len(trained)} trained, {len(evaluated)} evaluated, "
                      f"{len(set(evaluated) - set(trained))} unseen): {policy}")
            self.class_policy = {"trained": trained, "evaluated": evaluated, "policy": policy,
                                 **({"subset": {k: v for k, v in subset.items() if k != "policy"}} if subset else {})}
        print(f"Trained classes: {self.class_policy['trained']}; evaluated classes: {evaluated}; "
              f"policy: {self.class_policy['policy']}")

    def load_same_classes(self, name: str, checkpoint: dict[str, Any], verified: bool) -> None:
        self._models[name].load_state_dict(checkpoint["state_dict"])

    def loaded_results(self) -> dict[str, Any]:
        """What results.json says about the loaded checkpoint (classes, policy, warnings)."""
        out = {}
        if getattr(self, "class_policy", None):
            out["classes"] = dict(self.class_policy)
        if getattr(self, "load_warnings", None):
            out["warnings"] = list(self.load_warnings)
        return out
