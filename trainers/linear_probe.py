"""LinearProbe: CoOp's linear-probe CLIP baseline (Radford et al. 2021; CoOp's lpclip/): an L2-regularised
logistic regression (scikit-learn, lbfgs, max_iter 1000) on frozen, unnormalised CLIP image features.

C is searched on the validation split as lpclip does: the coarse grid 1e6 ... 1e-6, then SEARCH_STEPS
bisection steps in log10 space starting from [C*/10, 10 C*] (fit both ends, keep the better, a tie keeps
the smaller C; the next bracket runs from the midpoint to the kept end); the last step's model is the one
tested. Differences from lpclip, by design: the K-shot train and val sets are the toolkit's (CoOp's split
files and few-shot sampling), not lpclip's own np.random draw; any backbone, not RN50 only. The fitted
weights become an nn.Linear head (the checkpoint), so ``--eval-only`` scores exactly the fitted model.
"""
import numpy as np
import torch
from torch import nn

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config

from .features import FeatureTrainer
from .hp_search import accuracy, check_hp_selection, hp_record

COARSE_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)  # lpclip's initial search list, in its order


@register_config
def _linear_probe_keys(cfg):
    node = ensure_node(cfg, "TRAINER.LINEARPROBE")
    node.HP_SELECTION = "val"  # val (lpclip) | test (labelled as test-selected) | defaults (C below)
    node.C = 1.0  # inverse L2 strength used when HP_SELECTION is "defaults" or there are no val images
    node.SEARCH_STEPS = 8  # bisection steps after the coarse grid (lpclip --num_step)
    node.MAX_ITER = 1000


def fit_logistic(features, labels, c, max_iter=1000):
    """scikit-learn's LogisticRegression(lbfgs, C) on numpy features (L2 is its default penalty; the
    ``penalty`` argument lpclip passes is deprecated in scikit-learn 1.8+)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="lbfgs", max_iter=int(max_iter), C=float(c)).fit(features, labels)


def search_c(train, val, steps=8, max_iter=1000):
    """lpclip's C search on (features, labels) numpy pairs. Returns (classifier, C, trace of (C, val acc))."""
    def val_acc(clf):
        return 100.0 * float((clf.predict(val[0]) == val[1]).mean())

    trace = []
    coarse = []
    for c in COARSE_GRID:
        coarse.append(val_acc(fit_logistic(*train, c, max_iter)))
        trace.append((c, coarse[-1]))
    peak = COARSE_GRID[int(np.argmax(coarse))]
    left, right = np.log10(peak) - 1.0, np.log10(peak) + 1.0
    clf, c_final = None, peak
    for _ in range(int(steps)):
        clf_l, clf_r = fit_logistic(*train, 10 ** left, max_iter), fit_logistic(*train, 10 ** right, max_iter)
        acc_l, acc_r = val_acc(clf_l), val_acc(clf_r)
        trace += [(10 ** left, acc_l), (10 ** right, acc_r)]
        mid = 0.5 * (left + right)
        if acc_l < acc_r:
            clf, c_final, left = clf_r, 10 ** right, mid
        else:
            clf, c_final, right = clf_l, 10 ** left, mid
    if clf is None:  # SEARCH_STEPS 0: the coarse grid's best
        clf = fit_logistic(*train, peak, max_iter)
    return clf, float(c_final), trace


def linear_head_from(clf, num_classes, dim):
    """An nn.Linear giving the same argmax as ``clf.predict`` over all ``num_classes`` labels.

    A binary sklearn model has one row w: class 1 wins where w.x + b > 0, i.e. logits (0, w.x + b). Classes
    absent from the training labels get a bias of -inf (never predicted, as by sklearn).
    """
    head = nn.Linear(dim, num_classes)
    weight = torch.zeros(num_classes, dim, dtype=torch.float64)
    bias = torch.full((num_classes,), -float("inf"), dtype=torch.float64)
    coef = torch.as_tensor(clf.coef_, dtype=torch.float64)
    intercept = torch.as_tensor(clf.intercept_, dtype=torch.float64)
    classes = [int(c) for c in clf.classes_]
    if len(classes) == 2:
        weight[classes[1]], bias[classes[1]], bias[classes[0]] = coef[0], intercept[0], 0.0
    else:
        weight[classes], bias[classes] = coef, intercept
    with torch.no_grad():
        head.weight.copy_(weight.float())
        head.bias.copy_(bias.float())
    return head


@TRAINER_REGISTRY.register()
class LinearProbe(FeatureTrainer):
    """Logistic regression on frozen CLIP features, C chosen on the validation split."""

    NODE = "LINEARPROBE"
    NEEDS_TEXT_ENCODER = False  # image features only: also a classifier's pooled features
    FITTED = True
    HEAD_KIND = "linear_probe"
    PER_CLASS = "the logistic regression has one weight row and bias per training class"

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER.LINEARPROBE
        check_hp_selection(node.HP_SELECTION, "TRAINER.LINEARPROBE.HP_SELECTION")
        if float(node.C) <= 0 or int(node.SEARCH_STEPS) < 0 or int(node.MAX_ITER) < 1:
            raise ValueError("TRAINER.LINEARPROBE needs C > 0, SEARCH_STEPS >= 0 and MAX_ITER >= 1.")

    def build_head(self, classnames):
        self.record = {}
        return nn.Linear(self.feature_dim, len(classnames))

    def fit(self):
        node = self.node
        selection = self.hp_selection(f"; LinearProbe uses the default C = {node.C} (TRAINER.LINEARPROBE.C), "
                                      f"recorded in results.json.")
        x, y = (t.cpu().numpy() for t in self.features("train"))
        if selection == "defaults":
            clf, c, trace = fit_logistic(x, y, node.C, node.MAX_ITER), float(node.C), []
        else:
            val = tuple(t.cpu().numpy() for t in self.features(selection))
            clf, c, trace = search_c((x, y), val, node.SEARCH_STEPS, node.MAX_ITER)
        print(f"LinearProbe: C = {c:.6g} (selected on: {selection}); train accuracy "
              f"{100.0 * float((clf.predict(x) == y).mean()):.2f}%")
        fitted = linear_head_from(clf, self.num_classes, x.shape[1]).to(self.device)
        self.model.head.load_state_dict(fitted.state_dict())
        self.record = hp_record(selection, self.val_is_test,
                                {"C": c, "search_trace": [[float(a), float(b)] for a, b in trace]})
        self.record["train_accuracy"] = accuracy(self.model.head(torch.as_tensor(x, device=self.device)),
                                                 torch.as_tensor(y, device=self.device))

    def method_record(self):
        return dict(self.record)
