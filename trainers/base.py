"""Shared trainer code of the VR methods (ZeroshotCLIP, VP, AR, AttrVR, DVP_CSE, DVP_CLS).

A method is a subclass that names its config node (``NODE``) and says which texts it embeds
(``build_text``), how many prompts it uses (``num_prompts``) and how it aggregates
(``build_aggregation``). Everything else lives here, once: the reference's per-iteration cosine schedule,
PRM statistics hooks and the run files; the VR data pipeline (loaders yield [0,1] images; the prompt
normalises) is trainers/pipeline.py, the config keys trainers/vr_keys.py, checkpoint identity and other
class sets trainers/class_transfer.py; CLIP loading, autocast and the per-epoch test curve are the
plumbing CoOp shares (trainers/clip_plumbing.py).

Only Dassl's public TrainerX contract is used, so the trainers also run on the real Dassl 0.6.3.
"""
from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from engine import DataManager, TrainerX, build_lr_scheduler, build_optimizer, distributed
from engine.extend import trainer_node
from engine.io import atomic_write_json
from vr import ReprogrammedCLIP, loader_size_for, prompt_class, prompt_from_node
from vr.classifier import ReprogrammedClassifier

from .backbone_kind import check_backbone_kind, frozen_backbone
from .checkpoints import RunCheckpoints
from .class_transfer import VRClassTransfer
from .classifier_source import ClassifierSource
from .clip_plumbing import PerEpochTestCurve, autocast, check_precision, load_backbone, precision_used
from .pipeline import (
    DATA_MANAGER_ATTRIBUTES,
    augment_seed,
    check_pipeline_cfg,
    eval_dataset_wrapper,
    full_pass_loader,
    set_loader_epoch,
    unsaved_randomness,
    vr_transforms,
)
from .vr_keys import LOGIT_MATHS, PRECISIONS

if TYPE_CHECKING:
    import contextlib

    from yacs.config import CfgNode

    from vr import Aggregation, TextTable, VisualPrompt

MODEL_NAME = "vr_model"  # checkpoints: OUTPUT_DIR/vr_model/model.pth.tar-<epoch>


class VRTrainer(VRClassTransfer, ClassifierSource, PerEpochTestCurve, RunCheckpoints, TrainerX):
    """Base of the VR trainers. Subclasses set NODE and implement build_text / build_aggregation.

    Evaluating on another class set (trainers/checkpoints.py): the learned prompts are kept; a class seen
    in training keeps the texts, prompt assignment and aggregation rows (PRM) it was trained with; an
    unseen class gets the texts this method builds for it (``CLASS_TRANSFER`` says which), the prompt
    assignment of ``assign_unseen_prompts`` and the aggregation's initial row (PRM: uniform).
    """

    NODE = ""  # config node under TRAINER
    TRAINS = True  # ZeroshotCLIP: False (the scripts run it with --eval-only)
    SCRIPT_NAME = ""  # scripts/<name>.sh; "" means the trainer name in lower case (runs/catalogue.py)
    STATS_EPOCHS = 0  # DVP: 1 (epoch 0 collects PRM statistics, updates nothing)
    TRAIN_AUGMENT = True  # False: training images get the test transform (label mapping, as its references)
    PRECISION_KEY, PRECISION_CHOICES = "PRECISION", PRECISIONS  # TRAINER.<NODE>.PRECISION and its choices

    # ---- what a method defines -------------------------------------------------------------
    def num_prompts(self) -> int:
        return 1

    def build_text(self, classnames: Sequence[str]) -> TextTable:
        """Return the TextTable (texts, class/slot/prompt indices) of this method."""
        raise NotImplementedError

    def build_aggregation(self, table: TextTable) -> Aggregation:
        raise NotImplementedError

    def check_method_cfg(self, cfg: CfgNode) -> None:
        """Method-specific config checks (run before anything is loaded)."""

    def write_method_files(self, output_dir: str) -> None:
        """Extra files written into OUTPUT_DIR at the end of training (DVP: the PRM)."""

    def assign_unseen_prompts(self, table: TextTable, grid: torch.Tensor, unseen: list[int],
                              saved_text_state: dict[str, Any]) -> None:
        """Prompt of each slot of the ``unseen`` class rows of ``grid`` (default: as build_text assigned)."""

    # ---- config ------------------------------------------------------------------------------
    @property
    def vcfg(self) -> CfgNode:
        return self.cfg.TRAINER[self.NODE]

    def check_cfg(self, cfg: CfgNode) -> None:
        check_backbone_kind(type(self), cfg)  # a classifier for a text method: refused first
        node = trainer_node(cfg, self.NODE)
        prompt_class(node.PROMPT, key=f"TRAINER.{self.NODE}.PROMPT")  # unknown kind -> error with the list
        check_precision(node.PRECISION, PRECISIONS, f"TRAINER.{self.NODE}.PRECISION")
        if node.LOGIT_MATH not in LOGIT_MATHS:
            raise ValueError(f'Unknown logit math "{node.LOGIT_MATH}" (TRAINER.{self.NODE}.LOGIT_MATH). '
                             f"Use one of: {', '.join(LOGIT_MATHS)}.")
        if int(node.ENCODER_CHUNK) < 0:
            raise ValueError(f"TRAINER.{self.NODE}.ENCODER_CHUNK must be >= 0 (0: no chunking).")
        if int(node.BATCH_SIZE_1SHOT) < 0:
            raise ValueError(f"TRAINER.{self.NODE}.BATCH_SIZE_1SHOT must be >= 0 (0: DATALOADER.TRAIN_X.BATCH_SIZE "
                             f"at every shot count), got {node.BATCH_SIZE_1SHOT}.")
        check_pipeline_cfg(cfg)
        if self.TRAINS and cfg.OPTIM.MAX_EPOCH <= self.STATS_EPOCHS:
            print(f"Note: OPTIM.MAX_EPOCH = {cfg.OPTIM.MAX_EPOCH} leaves no epoch that updates the prompts "
                  f"(the first {self.STATS_EPOCHS} epoch(s) only collect PRM statistics).")
        self.check_method_cfg(cfg)

    def sampling_seed(self) -> int:
        """Seed of the description draw: the run's seed (a fresh one, printed, when SEED < 0)."""
        if self.cfg.SEED >= 0:
            return int(self.cfg.SEED)
        if not hasattr(self, "_sampling_seed"):  # the same on every process of a torchrun run
            self._sampling_seed = distributed.broadcast_int(random.SystemRandom().randrange(2 ** 31))
            print(f"SEED < 0: descriptions are sampled with seed {self._sampling_seed}")
        return self._sampling_seed

    def load_descriptions(self, classnames: Sequence[str], files: Sequence[tuple[str, str]],
                          m: int) -> list[list[list[str]]]:
        """Resolve, validate and sample description files; print the report lines; return the sets."""
        from descriptions import load_and_sample

        sets = load_and_sample(self.cfg.DATASET.NAME, classnames, files, m=int(m), seed=self.sampling_seed(),
                               mode=self.vcfg.SAMPLING, descriptions_dir=self.cfg.DATASET.DESCRIPTIONS_DIR,
                               key=self.description_key_of(self.cfg))
        for s in sets:
            print(s.line)
        self.description_sets = sets
        return [s.sentences for s in sets]

    def identity_files(self) -> list[tuple[str, str]]:
        """(what, path) of the description files used: their content is recorded with the data identity."""
        return [("descriptions", s.path) for s in getattr(self, "description_sets", None) or []]

    def resolve_description_files(self, cfg: CfgNode, files: Sequence[tuple[str, str]]) -> None:
        """Fail early (before data and CLIP are loaded) when a description file is missing."""
        from descriptions import resolve_file

        for group, suffix in files:
            resolve_file(cfg.DATASET.NAME, group, suffix, descriptions_dir=cfg.DATASET.DESCRIPTIONS_DIR,
                         key=self.description_key_of(cfg))

    @staticmethod
    def description_key_of(cfg: CfgNode) -> str:
        """DATASET.DESCRIPTIONS_KEY, else the dataset loader's published key (datasets package)."""
        try:
            from datasets import descriptions_key
        except ImportError:  # the datasets package is optional for the trainers
            return cfg.DATASET.get("DESCRIPTIONS_KEY", "")
        return descriptions_key(cfg)

    # ---- data ----------------------------------------------------------------------------------
    def train_batch_size(self) -> int:
        """The training batch: BATCH_SIZE_1SHOT when it is set and DATASET.NUM_SHOTS is 1 (the AttrVR
        reference's rule), else DATALOADER.TRAIN_X.BATCH_SIZE."""
        one_shot = int(self.vcfg.BATCH_SIZE_1SHOT)
        if one_shot > 0 and int(self.cfg.DATASET.NUM_SHOTS) == 1:
            return one_shot
        return int(self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE)

    def build_data_loader(self) -> None:
        cfg = self.cfg
        self.clip = frozen_backbone(load_backbone(cfg, self.device, self))  # CLIP or a classifier
        node = self.vcfg
        self.make_prompts(1)  # checks the prompt geometry against the backbone before loading data
        size = loader_size_for(node, self.clip.image_size)
        tfm_train, tfm_test = vr_transforms(size)
        if not self.TRAIN_AUGMENT:
            tfm_train = tfm_test
        dm = DataManager(cfg, custom_tfm_train=tfm_train, custom_tfm_test=tfm_test,
                         dataset_wrapper=eval_dataset_wrapper)
        batch = self.train_batch_size()
        if self.TRAINS and batch != cfg.DATALOADER.TRAIN_X.BATCH_SIZE:
            print(f"1 shot: training batch {batch} (TRAINER.{self.NODE}.BATCH_SIZE_1SHOT), not "
                  f"DATALOADER.TRAIN_X.BATCH_SIZE {cfg.DATALOADER.TRAIN_X.BATCH_SIZE}; set BATCH_SIZE_1SHOT 0 to "
                  f"use the latter")
        dm.train_loader_x = full_pass_loader(cfg, dm.dataset.train_x, tfm_train,
                                             seed=augment_seed(cfg, self.sampling_seed()), batch_size=batch)
        for name in DATA_MANAGER_ATTRIBUTES:  # what Dassl's build_data_loader sets, on either backend
            setattr(self, name, getattr(dm, name))
        self.dm = dm

    def inexact_resume_reason(self) -> str | None:
        return unsaved_randomness(self.train_loader_x)

    # ---- model -------------------------------------------------------------------------------
    def make_prompts(self, num_prompts: int) -> VisualPrompt:
        return prompt_from_node(self.vcfg, self.clip.image_size, self.clip.mean, self.clip.std, num_prompts)

    def build_model(self) -> None:
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        on_classifier = self.on_classifier  # its source classes, mapped (trainers/classifier_source.py)
        table = self.clip.source_table(len(classnames)) if on_classifier else self.build_text(classnames)
        prompts = self.make_prompts(self.num_prompts())
        aggregation = self.classifier_mapping(table) if on_classifier else self.build_aggregation(table)
        model_class = ReprogrammedClassifier if on_classifier else ReprogrammedCLIP
        self.model = model_class(self.clip, prompts, table, aggregation,
                                      encoder_chunk=self.vcfg.ENCODER_CHUNK,
                                      first_layer_split=self.vcfg.FIRST_LAYER_SPLIT,
                                      scale_first=self.vcfg.LOGIT_MATH == "reference").to(self.device)
        print(f"{self.NODE}: {prompts.num_prompts} {prompts.kind} prompt(s), "
              f"{prompts.num_trainable_entries():,} trainable entries; {len(table):,} texts "
              f"({table.layout()}); aggregation {type(aggregation).__name__}; "
              f"first-layer split {self.model.first_layer_split_status}")
        self.trainable_params = prompts.num_trainable_entries() if self.TRAINS else 0  # the frame's entries only
        optim = sched = None
        if self.TRAINS:
            optim = build_optimizer(self.model, cfg.OPTIM)
            sched = self.build_scheduler(optim)
        self.optim, self.sched = optim, sched
        self.register_model(MODEL_NAME, self.model, optim, sched)
        self._precision_note_done = False
    def build_scheduler(self, optim: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """OPTIM.LR_SCHEDULER 'cosine': the reference's cosine stepped per ITERATION,
        T_max = MAX_EPOCH * iterations per epoch (built here: Dassl's warm-up schedulers fail on recent
        torch). Any other Dassl name: the engine's scheduler, stepped per epoch."""
        if self.cfg.OPTIM.LR_SCHEDULER == "cosine":
            self.lr_per_iteration = True
            t_max = self.cfg.OPTIM.MAX_EPOCH * len(self.train_loader_x)
            return torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(1, t_max))
        self.lr_per_iteration = False
        return build_lr_scheduler(optim, self.cfg.OPTIM)

    # ---- training ----------------------------------------------------------------------------
    def effective_precision(self) -> str:
        """PRECISION as run: fp16 autocast needs CUDA, so it becomes fp32 on other devices."""
        return precision_used(self.vcfg.PRECISION, self.device)

    def train_autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for training steps (tests always run in fp32, as in the reference)."""
        precision = self.effective_precision()
        if precision != self.vcfg.PRECISION and not self._precision_note_done:
            print(f"Note: fp16 autocast needs CUDA; training in fp32 on the {self.device.type.upper()}.")
            self._precision_note_done = True
        return autocast(self.device, precision)

    def updates_this_epoch(self) -> bool:
        return self.epoch >= self.STATS_EPOCHS

    def observe(self, batch: dict[str, Any], z: torch.Tensor, label: torch.Tensor) -> None:
        """Statistics of the real samples (a multi-process run may pad a rank's last batch, ``valid``)."""
        if "valid" in batch:
            keep = torch.as_tensor(batch["valid"], dtype=torch.bool).to(label.device)
            z, label = z[keep], label[keep]
        self.model.aggregation.observe(z, label)

    def before_epoch(self) -> None:
        super().before_epoch()
        set_loader_epoch(self.train_loader_x, self.epoch)  # per-sample augmentation seeds
        if not self.counts_training_forwards():
            self.statistics_pass()

    def forward_backward(self, batch: dict[str, Any]) -> dict[str, float]:
        image, label = self.parse_batch_train(batch)[:2]
        if self.updates_this_epoch():
            with self.train_autocast():
                logits, z = self.model.forward_with_descriptions(image)
                loss = F.cross_entropy(logits, label)
            if self.counts_training_forwards():
                self.observe(batch, z.detach(), label)  # same forward as the loss, before the step
            self.model_backward_and_update(loss)
            if self.lr_per_iteration:
                self.update_lr()
        else:  # statistics-only epoch (DVP epoch 0): fp32, nothing is updated
            with torch.no_grad():
                logits, z = self.model.forward_with_descriptions(image)
                loss = F.cross_entropy(logits, label)
            if self.counts_training_forwards():
                self.observe(batch, z, label)
        acc = (logits.argmax(dim=1) == label).float().mean().item() * 100.0
        return {"loss": loss.item(), "acc": acc}

    def sync_statistics(self) -> None:
        """All-reduce the aggregation's statistics (PRM counts) when running distributed."""
        stats = getattr(self.model.aggregation, "statistics", None)
        if stats is not None:
            distributed.all_reduce_sum(stats())  # no-op in one process

    def counts_training_forwards(self) -> bool:
        """True when the aggregation's statistics are the training forwards' (PRM), not a separate pass."""
        return self.model.aggregation.STATISTICS == "training"

    @torch.no_grad()
    def statistics_pass(self) -> None:
        """Label mapping: one no-grad fp32 pass over the training set with the current prompt, counted,
        then the aggregation re-estimated (the references' mapping before every epoch)."""
        model, aggregation = self.model, self.model.aggregation
        model.eval()
        for batch in self.train_loader_x:
            image, label = self.parse_batch_train(batch)[:2]
            self.observe(batch, model.description_logits(image), label)
        self.sync_statistics()
        aggregation.end_epoch()
        model.train()

    def after_epoch(self) -> None:
        if self.counts_training_forwards():
            self.sync_statistics()
            self.model.aggregation.end_epoch()  # PRM: re-estimated from this epoch's counts
        if self.updates_this_epoch() and not self.lr_per_iteration:
            self.update_lr()
        if self.updates_this_epoch():
            self.extend_test_curve()
        super().after_epoch()  # checkpoint (holds the re-estimated PRM)

    def before_train(self) -> None:
        if not self.TRAINS:
            raise ValueError(f"{self.cfg.TRAINER.NAME} has nothing to train: run it with --eval-only "
                             f"(and no --model-dir).")
        super().before_train()
        self.resume_test_curve()

    def after_train(self) -> None:
        if distributed.is_main_process():  # one writer per run
            self.write_run_files()
        super().after_train()

    # ---- outputs -----------------------------------------------------------------------------
    def write_run_files(self) -> None:
        """The texts each prompt scores (with the sampling reports) and the method's own files."""
        out = self.output_dir
        table = self.model.text_table
        record = {
            "trainer": self.cfg.TRAINER.NAME,
            "classnames": list(self.dm.dataset.classnames),
            "num_slots": table.num_slots,
            "num_prompts": table.num_prompts,
            "texts": table.listing(self.dm.dataset.classnames),
        }
        sets = getattr(self, "description_sets", None)
        if sets:
            record["description_files"] = [{"group": s.group, "suffix": s.suffix, "path": s.path,
                                            "report": s.report.to_dict()} for s in sets]
        record.update(self.run_record())
        record.update(self.classifier_record())
        atomic_write_json(os.path.join(out, "vr_texts.json"), record)
        self.write_method_files(out)

    def run_record(self) -> dict[str, Any]:
        """Method-specific facts stored with the run (grouping, ...)."""
        return {}

    def extra_results(self) -> dict[str, Any]:
        """Extra keys for results.json (train.py calls this when present)."""
        prompts = self.model.prompts
        info = {"prompt": prompts.kind, "num_prompts": prompts.num_prompts,
                "trainable_entries": prompts.num_trainable_entries(),
                "precision": self.vcfg.PRECISION, "precision_used": self.effective_precision(),
                "first_layer_split": self.model.first_layer_split_status,
                "logit_math": self.vcfg.LOGIT_MATH, "train_batch_size": self.train_batch_size()}
        sets = getattr(self, "description_sets", None)
        if sets:
            info["description_sampling"] = self.vcfg.SAMPLING
            info["description_files"] = [f"{s.group}/{os.path.basename(s.path)}" for s in sets]
        info.update(self.run_record())
        info.update(self.classifier_record())
        return {"vr": info, **self.loaded_results()}


class TemplateTrainer(VRTrainer):
    """One template text per class, one prompt, identity aggregation (ZeroshotCLIP, VP, AR)."""

    CLASS_TRANSFER = "learned prompt kept; every evaluated class is scored by its own template text"

    def write_method_files(self, output_dir: str) -> None:
        if self.on_classifier:  # VP / AR on a classifier: their fixed map
            self.write_label_map(output_dir)

    def check_method_cfg(self, cfg: CfgNode) -> None:
        from vr import templates_for

        templates_for(cfg.DATASET.NAME, cfg.TRAINER[self.NODE].TEMPLATES)  # unknown choice -> error

    def build_text(self, classnames: Sequence[str]) -> TextTable:
        from vr import template_table, templates_for

        templates = templates_for(self.cfg.DATASET.NAME, self.vcfg.TEMPLATES)
        print(f"Templates ({self.vcfg.TEMPLATES}): {templates}")
        return template_table(classnames, templates)

    def build_aggregation(self, table: TextTable) -> Aggregation:
        from vr import Identity

        return Identity()
