"""LPPlusPlus (Huang et al., "LP++: A Surprisingly Strong Linear Probe for Few-Shot CLIP", CVPR 2024): a
linear probe whose class weights are blended with the text weights by learned per-class factors.

With f normalised and t_k the normalised text weight of class k (TEMPLATES "tip": Tip-Adapter's text,
the 7-template ensemble on ImageNet, CoOp's zero-shot template elsewhere):

    l_k(f) = w_k . f + b_k + alpha_k (t_k . f)       (no logit scale)

As the released code (methods/linear_probe_p2.py): features of the K-shot set augmented once
(RandomResizedCrop 0.5-1 + flip); w_k starts at the class SUM of the features, b at nn.Linear's default
init, every alpha_k at 250 x mean_k(mean_{i: y_i = k} f_i . t_k); full-batch cross-entropy for EPOCHS
epochs; W, b: SGD with momentum 0.9 at lr_W = 4N / lambda_max(F^T F); alpha: a plain step of
lr_alpha = N / (4 max_k sum_i (f_i . t_k)^2) every 10th epoch with the gradient SUMMED since epoch 0
(the code never zeroes it; ALPHA_GRAD_ACCUMULATE False uses the current gradient instead). After each
epoch the val accuracy is measured; the model kept is the one of the last epoch whose val accuracy is >= the
best so far (the last epoch without val images). The K-shot and val sets are the toolkit's.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config

from .features import FeatureTrainer
from .hp_search import accuracy

ALPHA_EVERY = 10  # epochs between alpha steps


@register_config
def _lpplusplus_keys(cfg):
    node = ensure_node(cfg, "TRAINER.LPPLUSPLUS")
    node.EPOCHS = 300
    node.ALPHA_INIT_SCALE = 250.0
    node.ALPHA_GRAD_ACCUMULATE = True  # the released code's summed alpha gradient
    node.TEMPLATES = "tip"  # Tip-Adapter's text (LP++ uses it): 7-template ensemble on ImageNet, else CoOp's


class BlendHead(nn.Module):
    """Visual linear classifier plus per-class multiples of the text classifier."""

    def __init__(self, text):
        super().__init__()
        num_classes, dim = text.shape
        self.linear = nn.Linear(dim, num_classes)
        self.alpha = nn.Parameter(torch.ones(num_classes, device=text.device))
        self.register_buffer("text", text, persistent=False)

    def forward(self, features):
        f = F.normalize(features, dim=-1)
        return self.linear(f) + self.alpha * (f @ self.text.t())


def step_sizes(features, text):
    """(lr_W, lr_alpha) of the released code for (N, D) normalised features and (C, D) text weights."""
    n = features.shape[0]
    gram = (features.t() @ features).double()
    lr_w = 4.0 * n / float(torch.linalg.eigvalsh(gram).max())
    lr_alpha = n / (4.0 * float(((features @ text.t()) ** 2).sum(dim=0).max()))
    return lr_w, lr_alpha


def init_head(head, features, labels, scale=250.0):
    """Class-sum weights and one shared alpha = scale x mean over classes of the class-mean text score."""
    num_classes = head.text.shape[0]
    onehot = F.one_hot(labels, num_classes).float()
    with torch.no_grad():
        head.linear.weight.copy_(onehot.t() @ features)
        scores = (features @ head.text.t()) * onehot  # f_i . t_{y_i} at column y_i
        per_class = scores.sum(dim=0) / onehot.sum(dim=0).clamp(min=1)
        present = onehot.sum(dim=0) > 0
        head.alpha.fill_(float(scale) * float(per_class[present].mean()))


@TRAINER_REGISTRY.register()
class LPPlusPlus(FeatureTrainer):
    """LP++: class weights and text blend factors fitted full-batch on cached features."""

    NODE = "LPPLUSPLUS"
    FITTED = True
    HEAD_KIND = "lpplusplus_blend"
    PER_CLASS = "its visual weights, biases and text blend factors alpha are per training class"

    def check_method_cfg(self, cfg):
        if int(cfg.TRAINER.LPPLUSPLUS.EPOCHS) < 1:
            raise ValueError(f"TRAINER.LPPLUSPLUS.EPOCHS must be at least 1 (got {cfg.TRAINER.LPPLUSPLUS.EPOCHS}).")

    def build_head(self, classnames):
        self.record = {}
        return BlendHead(self.text_weights())

    def fit(self):
        node, head = self.node, self.model.head
        feats, labels = self.features("train", "cache", epochs=1, normalise=True)
        val = self.features("val", normalise=True) if self.dm.dataset.val else None
        init_head(head, feats, labels, node.ALPHA_INIT_SCALE)
        lr_w, lr_alpha = step_sizes(feats, head.text)
        optim = torch.optim.SGD(head.linear.parameters(), lr=lr_w, momentum=0.9)
        print(f"LP++: lr_W = {lr_w:.4g}, lr_alpha = {lr_alpha:.4g}, initial alpha = {float(head.alpha.detach()[0]):.4g}"
              + ("" if val is not None else "; no validation images: the last epoch is kept"))
        best_val, best_epoch, best_state, self.loss_curve = -1.0, -1, None, []
        alpha_grad = torch.zeros_like(head.alpha)
        for epoch in range(int(node.EPOCHS)):
            loss = F.cross_entropy(head(feats), labels)
            optim.zero_grad()
            head.alpha.grad = None
            loss.backward()
            optim.step()
            alpha_grad = alpha_grad + head.alpha.grad if node.ALPHA_GRAD_ACCUMULATE else head.alpha.grad
            if (epoch + 1) % ALPHA_EVERY == 0:
                with torch.no_grad():
                    head.alpha -= lr_alpha * alpha_grad
            self.loss_curve.append(loss.item())
            if val is not None:
                with torch.no_grad():
                    acc = accuracy(head(val[0]), val[1])
                if acc >= best_val:
                    best_val, best_epoch, best_state = acc, epoch, copy.deepcopy(head.state_dict())
        if best_state is not None:
            head.load_state_dict(best_state)
        else:
            best_epoch = int(node.EPOCHS) - 1
        print(f"LP++: kept epoch {best_epoch + 1}/{node.EPOCHS} (val accuracy "
              f"{best_val if val is not None else float('nan'):.2f}%); loss {self.loss_curve[0]:.4f} -> "
              f"{self.loss_curve[-1]:.4f}")
        self.record = {"hp_selection": "val" if val is not None else "last epoch (no validation images)",
                       "kept_epoch": best_epoch + 1, "val_accuracy": best_val if val is not None else None,
                       "lr_w": lr_w, "lr_alpha": lr_alpha, "alpha_grad_accumulate": bool(node.ALPHA_GRAD_ACCUMULATE),
                       "first_loss": self.loss_curve[0], "last_loss": self.loss_curve[-1]}
        if val is not None and self.val_is_test:
            self.record["test_selected"] = True

    def method_record(self):
        return dict(self.record)
