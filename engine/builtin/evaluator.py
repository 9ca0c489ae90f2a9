"""The Classification evaluator, printing Dassl's result lines that CoOp's parser reads."""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from engine import distributed

from .registry import Registry, check_availability

if TYPE_CHECKING:
    from yacs.config import CfgNode

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg: CfgNode, **kwargs: Any) -> EvaluatorBase:
    check_availability(cfg.TEST.EVALUATOR, EVALUATOR_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading evaluator: {cfg.TEST.EVALUATOR}")
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)


class EvaluatorBase:
    def __init__(self, cfg: CfgNode):
        self.cfg = cfg

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> OrderedDict[str, float]:
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accuracy, error and macro-F1 over processed batches; per-class accuracy when asked."""

    def __init__(self, cfg: CfgNode, lab2cname: dict[int, str] | None = None, **kwargs: Any):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._correct = 0
        self._total = 0
        self._per_class_res = None
        self._y_true = []
        self._y_pred = []
        if cfg.TEST.PER_CLASS_RESULT:
            assert lab2cname is not None
            self._per_class_res = defaultdict(list)

    def reset(self) -> None:
        self._gathered = False
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        if self._per_class_res is not None:
            self._per_class_res = defaultdict(list)

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        pred = mo.max(1)[1]
        matches = pred.eq(gt).float()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.data.cpu().numpy().tolist())
        self._y_pred.extend(pred.data.cpu().numpy().tolist())
        if self._per_class_res is not None:
            for i, label in enumerate(gt):
                self._per_class_res[label.item()].append(int(matches[i].item()))

    def _gather(self):
        """Multi-process runs: every rank gets the labels of the whole evaluation set, in sample order
        (each rank evaluated a contiguous part), so the numbers cover each sample exactly once."""
        if not distributed.is_distributed() or self.__dict__.get("_gathered"):
            return
        self._gathered = True  # until reset(): evaluate() twice must not gather twice
        self._y_true, self._y_pred = distributed.gather_lists(self._y_true, self._y_pred)
        self._total = len(self._y_true)
        self._correct = sum(int(t == p) for t, p in zip(self._y_true, self._y_pred, strict=False))
        if self._per_class_res is not None:
            self._per_class_res = defaultdict(list)
            for t, p in zip(self._y_true, self._y_pred, strict=False):
                self._per_class_res[t].append(int(t == p))

    def evaluate(self) -> OrderedDict[str, float]:
        self._gather()
        results = OrderedDict()
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        macro_f1 = 100.0 * f1_score(self._y_true, self._y_pred, average="macro", labels=np.unique(self._y_true))
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1
        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {err:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )
        if self._per_class_res is not None:
            labels = sorted(self._per_class_res)
            print("=> per-class result")
            accs = []
            for label in labels:
                res = self._per_class_res[label]
                correct, total = sum(res), len(res)
                class_acc = 100.0 * correct / total
                accs.append(class_acc)
                print(f"* class: {label} ({self._lab2cname[label]})\ttotal: {total:,}\tcorrect: {correct:,}\t"
                      f"acc: {class_acc:.1f}%")
            mean_acc = np.mean(accs)
            print(f"* average: {mean_acc:.1f}%")
            results["perclass_accuracy"] = mean_acc
        if self.cfg.TEST.COMPUTE_CMAT and distributed.is_main_process():
            import os.path as osp
            cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(cmat, save_path)
            print(f"Confusion matrix is saved to {save_path}")
        return results
