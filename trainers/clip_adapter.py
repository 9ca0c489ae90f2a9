"""CLIPAdapter (Gao et al., "CLIP-Adapter: Better Vision-Language Models with Feature Adapters", arXiv
2110.04544): a residual bottleneck adapter on frozen CLIP image features, trained with CoOp's engine.

    A(f) = ReLU(W2 ReLU(W1 f)),  W1: d -> d/REDUCTION, W2: d/REDUCTION -> d, no biases
    f' = RATIO A(f) + (1 - RATIO) f        (f unnormalised, RATIO = 0.2 in the released code)
    logits = s cos(f', w_c)                (w_c: CoOp's zero-shot template, s = CLIP's logit scale)

Only W1, W2 are trained (cross-entropy, the OPTIM.* optimiser and Dassl's scheduler stepped per epoch, as
CoOp). Differences from the released clip_adapter.py, by design: d follows the backbone (the code hard-codes
1024, RN50); the text features are computed once at build (CLIP is frozen, so recomputing them each forward
gives the same values); CLIP runs in fp32.
"""
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY, build_optimizer
from engine.extend import ensure_node, register_config
from engine.schedulers import build_lr_scheduler

from .features import FeatureTrainer


@register_config
def _clip_adapter_keys(cfg):
    node = ensure_node(cfg, "TRAINER.CLIPADAPTER")
    node.RATIO = 0.2  # residual ratio alpha: weight of the adapted feature
    node.REDUCTION = 4  # bottleneck width d / REDUCTION
    node.TEMPLATES = "coop"


class Adapter(nn.Module):
    def __init__(self, dim, reduction=4):
        super().__init__()
        hidden = max(1, dim // int(reduction))
        self.fc = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, dim, bias=False), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.fc(x)


class AdapterHead(nn.Module):
    """Residual blend of the adapted and the original feature, then the zero-shot text classifier."""

    def __init__(self, text, logit_scale, ratio=0.2, reduction=4):
        super().__init__()
        self.adapter = Adapter(text.shape[1], reduction)
        self.ratio = float(ratio)
        self.register_buffer("text", text, persistent=False)
        self.register_buffer("logit_scale", logit_scale.detach().clone().float(), persistent=False)

    def blend(self, features):
        return self.ratio * self.adapter(features) + (1.0 - self.ratio) * features

    def forward(self, features):
        return self.logit_scale * F.normalize(self.blend(features), dim=-1) @ self.text.t()


@TRAINER_REGISTRY.register()
class CLIPAdapter(FeatureTrainer):
    """Residual feature adapter on frozen CLIP."""

    NODE = "CLIPADAPTER"
    MODEL_NAME = "clip_adapter"
    HEAD_KIND = "clip_adapter"
    CLASS_TRANSFER = ("adapter kept (it is class-agnostic); every evaluated class is scored by its own zero-shot "
                      "text weights, built from the evaluated class names")

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER.CLIPADAPTER
        if not 0.0 <= float(node.RATIO) <= 1.0:
            raise ValueError(f"TRAINER.CLIPADAPTER.RATIO must lie in [0, 1] (got {node.RATIO}).")
        if int(node.REDUCTION) < 1:
            raise ValueError(f"TRAINER.CLIPADAPTER.REDUCTION must be at least 1 (got {node.REDUCTION}).")

    def build_head(self, classnames):
        return AdapterHead(self.text_weights(), self.encoder.logit_scale, self.node.RATIO, self.node.REDUCTION)

    def build_optimizer_and_scheduler(self, head):
        optim = build_optimizer(head.adapter, self.cfg.OPTIM)
        return optim, build_lr_scheduler(optim, self.cfg.OPTIM)  # stepped once per epoch, as CoOp

    def head_identity(self):
        return {"ratio": float(self.node.RATIO), "reduction": int(self.node.REDUCTION)}

    def load_other_classes(self, name, checkpoint, trained):
        self._models[name].load_state_dict(checkpoint["state_dict"])  # the adapter only; the text is this run's

    def method_record(self):
        return {"ratio": float(self.node.RATIO), "reduction": int(self.node.REDUCTION),
                "templates": self.node.TEMPLATES}
