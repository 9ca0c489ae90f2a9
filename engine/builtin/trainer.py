"""TrainerBase / SimpleTrainer / TrainerX with Dassl's lifecycle, hooks, checkpoints and log lines."""
from __future__ import annotations

import datetime
import os.path as osp
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine import distributed
from engine.checkpoint_files import BEST_MODEL_FILE, model_file
from engine.eval_progress import EvalProgress

from .checkpoint import load_checkpoint, resume_from_checkpoint, save_checkpoint
from .data.manager import DataManager
from .evaluator import build_evaluator
from .registry import Registry, check_availability
from .utils import AverageMeter, MetricMeter, mkdir_if_missing

if TYPE_CHECKING:
    from yacs.config import CfgNode

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg: CfgNode) -> SimpleTrainer:
    check_availability(cfg.TRAINER.NAME, TRAINER_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading trainer: {cfg.TRAINER.NAME}")
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)


class TrainerBase:
    """Registered models with their optimisers and schedulers; the epoch loop and its hooks."""

    def __init__(self):
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self._writer = None

    def register_model(self, name: str = "model", model: torch.nn.Module | None = None,
                       optim: torch.optim.Optimizer | None = None, sched: Any = None) -> None:
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        assert name not in self._models, "Found duplicate model names"
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names: str | Sequence[str] | None = None) -> list[str]:
        names_real = list(self._models.keys())
        if names is not None:
            names = [names] if isinstance(names, str) else names
            for name in names:
                assert name in names_real
            return names
        return names_real

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result: float | None = None,
                   model_name: str = "") -> None:
        if not distributed.is_main_process():
            return  # one writer per run (multi-process runs)
        for name in self.get_model_names():
            optim = self._optims[name]
            sched = self._scheds[name]
            save_checkpoint(
                {
                    "state_dict": self._models[name].state_dict(),
                    "epoch": epoch + 1,
                    "optimizer": optim.state_dict() if optim is not None else None,
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "val_result": val_result,
                },
                osp.join(directory, name),
                is_best=is_best,
                model_name=model_name,
            )

    def resume_model_if_exist(self, directory: str) -> int:
        names = self.get_model_names()
        if not all(osp.exists(osp.join(directory, name, "checkpoint")) for name in names):
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch = 0
        for name in names:
            start_epoch = resume_from_checkpoint(osp.join(directory, name), self._models[name],
                                                 self._optims[name], self._scheds[name])
        return start_epoch

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        for name in self.get_model_names():
            model_path = osp.join(directory, name, model_file(epoch))
            if not osp.exists(model_path):
                raise FileNotFoundError(f'No model at "{model_path}"')
            checkpoint = load_checkpoint(model_path)
            val_result = checkpoint.get("val_result")
            shown = f"{val_result:.1f}" if isinstance(val_result, (int, float)) else val_result
            print(f"Load {model_path} to {name} (epoch={checkpoint['epoch']}, val_result={shown})")
            self._models[name].load_state_dict(checkpoint["state_dict"])

    def set_model_mode(self, mode: str = "train", names: str | Sequence[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ("test", "eval"):
                self._models[name].eval()
            else:
                raise KeyError(mode)

    def update_lr(self, names: str | Sequence[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def init_writer(self, log_dir: str) -> None:
        if not distributed.is_main_process():
            self._writer = None
            return
        if self.__dict__.get("_writer") is None or self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("Note: tensorboard is not installed; scalars are not logged to tensorboard")
                self._writer = None
                return
            print(f"Initialize tensorboard (log_dir={log_dir})")
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def write_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch: int, max_epoch: int) -> None:
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):  # noqa: B020  (Dassl's lifecycle: hooks read it)
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def run_epoch(self) -> None:
        raise NotImplementedError

    def test(self) -> Any:
        raise NotImplementedError

    def parse_batch_train(self, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def parse_batch_test(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward_backward(self, batch: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def model_zero_grad(self, names: str | Sequence[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        if distributed.is_distributed():
            # a non-finite loss is reported by sync_gradients on every rank at once (no rank left waiting)
            self._loss_finite = bool(torch.isfinite(loss).all())
            if self._loss_finite:
                loss.backward()
            return
        self.detect_anomaly(loss)
        loss.backward()

    def sync_gradients(self, names: str | Sequence[str] | None = None) -> None:
        """Multi-process runs: make every rank's gradients those of the global batch (DDP semantics).

        Uses ``self.local_batch_size`` (set per batch by run_epoch) as this rank's weight. No-op in one process.
        """
        if not distributed.is_distributed():
            return
        params = [p for name in self.get_model_names(names) if self._optims[name] is not None
                  for p in self._models[name].parameters()]
        count = getattr(self, "local_batch_size", None)
        distributed.sync_gradients(params, 1 if count is None else count, self.__dict__.pop("_loss_finite", True))

    def model_update(self, names: str | Sequence[str] | None = None) -> None:
        self.sync_gradients(names)
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss: torch.Tensor, names: str | Sequence[str] | None = None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(TrainerBase):
    """A trainer with one data manager, an evaluator, resume-on-start and test-at-end."""

    def __init__(self, cfg: CfgNode):
        super().__init__()
        self.check_cfg(cfg)
        self.device = distributed.device_for(cfg.USE_CUDA)  # cuda:LOCAL_RANK in a multi-GPU run
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -np.inf

    def check_cfg(self, cfg: CfgNode) -> None:
        """Check whether some variables are set correctly for the trainer (override as needed)."""

    def build_data_loader(self) -> None:
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_model(self) -> None:
        raise NotImplementedError("A trainer builds its model and calls register_model()")

    def train(self) -> None:
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self) -> None:
        directory = self.cfg.OUTPUT_DIR
        if self.cfg.RESUME:
            directory = self.cfg.RESUME
        self.start_epoch = self.resume_model_if_exist(directory)
        writer_dir = osp.join(self.output_dir, "tensorboard")
        if distributed.is_main_process():
            mkdir_if_missing(writer_dir)
        self.init_writer(writer_dir)
        self.time_start = time.time()

    def after_train(self) -> None:
        print("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()
        elapsed = str(datetime.timedelta(seconds=round(time.time() - self.time_start)))
        print(f"Elapsed: {elapsed}")
        self.close_writer()

    def after_epoch(self) -> None:
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_checkpoint_freq = (self.epoch + 1) % freq == 0 if freq > 0 else False
        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            is_best = curr_result > self.best_result
            if is_best:
                self.best_result = curr_result
                self.save_model(self.epoch, self.output_dir, val_result=curr_result, model_name=BEST_MODEL_FILE)
        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)

    @torch.no_grad()
    def test(self, split: str | None = None) -> float:
        self.set_model_mode("eval")
        self.evaluator.reset()
        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader
        print(f"Evaluate on the *{split}* set")
        progress, seen = EvalProgress(split, len(data_loader)), 0
        for index, batch in enumerate(data_loader, 1):
            input, label = self.parse_batch_test(batch)
            output = self.model_inference(input)
            self.evaluator.process(output, label)
            seen += len(label)
            progress.step(index, seen)
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        return list(results.values())[0]

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)

    def parse_batch_test(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names: str | Sequence[str] | None = None) -> float:
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]


class TrainerX(SimpleTrainer):
    """A trainer on labelled data only: one pass over train_loader_x per epoch."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        end = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):  # noqa: B020  (Dassl's lifecycle)
            data_time.update(time.time() - end)
            self.local_batch_size = distributed.local_batch_count(batch)  # gradient weight in multi-process runs
            try:
                loss_summary = self.forward_backward(batch)
            except FloatingPointError as err:
                raise FloatingPointError(
                    f"{err} (epoch {self.epoch + 1}/{self.max_epoch}, batch {self.batch_idx + 1}/{self.num_batches})."
                    " Training stopped; checkpoints of earlier epochs are kept.") from err  # train.py adds advice
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
            only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
            if meet_freq or only_few_batches:
                nb_remain = self.num_batches - self.batch_idx - 1
                nb_remain += (self.max_epoch - self.epoch - 1) * self.num_batches
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * nb_remain)))
                info = [
                    f"epoch [{self.epoch + 1}/{self.max_epoch}]",
                    f"batch [{self.batch_idx + 1}/{self.num_batches}]",
                    f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
                    f"data {data_time.val:.3f} ({data_time.avg:.3f})",
                    f"{losses}",
                    f"lr {self.get_current_lr():.4e}",
                    f"eta {eta}",
                ]
                print(" ".join(info))
            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.meters.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)
            end = time.time()

    def parse_batch_train(self, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        return batch["img"].to(self.device), batch["label"].to(self.device), batch["domain"].to(self.device)
