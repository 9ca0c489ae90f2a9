"""KgCoOp: CoOp with a knowledge-guided regulariser (Yao et al., "Visual-Language Prompt Tuning with
Knowledge-guided Context Optimization", CVPR 2023), a CoOp baseline that keeps new-class accuracy.

Everything of CoOp (trainers/coop.py, coop_model.py: the context, the text forward, checkpoints, precision) plus one
loss term that pulls each learned class embedding w_c towards the frozen hand-crafted prompt's embedding
w_c^clip = normalised E_txt(template(name)), computed once at build time:

    loss = CE(s * f . w, y) + W * (1 - mean_c cos(w_c, w_c^clip))   over all C classes, every step.

This is the released code's form (its TRAINER.COOP.W = 8 in the scripts); the paper writes
(1/C) sum ||w_c - w_c^clip||^2, twice this term for unit vectors. Templates are CoOp's zero-shot ones
per dataset, except DescribableTextures: "a photo of a {}, a type of texture." (as KgCoOp's code).
Deviations: lambda is TRAINER.KGCOOP.W (KgCoOp's code reads TRAINER.COOP.W); CLIP runs in fp32
(open_clip weights; PREC fp16 = CUDA autocast, as CoOp here); KgCoOp's unused meta-net, bias vectors and
adapter are not built (their tensors in KgCoOp's checkpoints are ignored on load); PREC "amp" keeps
the regulariser (KgCoOp's amp branch drops it).
New classes: yes, as CoOp (the context is class-agnostic; the anchor is only a training loss).
"""
import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config, trainer_node
from vr.text import class_text, templates_for

from .coop import CoOp
from .coop_model import CoOpCLIP

# Frozen, unused tensors that KgCoOp's checkpoints carry beside the context: ignored on load.
UNUSED_KEY_PREFIXES = ("bias_vectors", "meta_net.")

# KgCoOp's anchor templates where they differ from CoOp's zero-shot ones (the loaders' zeroshot_template).
KGCOOP_TEMPLATES = {"DescribableTextures": "a photo of a {}, a type of texture."}


@register_config
def _kgcoop_keys(cfg):
    node = ensure_node(cfg, "TRAINER.KGCOOP")
    node.W = 8.0  # lambda, the weight of the knowledge-guided term (KgCoOp's scripts: 8.0)


def anchor_template(dataset_name):
    """The hand-crafted prompt whose CLIP embedding anchors each class."""
    return KGCOOP_TEMPLATES.get(dataset_name) or templates_for(dataset_name, "coop")[0]


def knowledge_guided_term(text_features, anchor_features):
    """1 - mean over classes of cos(w_c, w_c^clip); (C, D) and (C, D) -> scalar."""
    return 1.0 - F.cosine_similarity(text_features.float(), anchor_features.float(), dim=-1).mean()


def _drop_unused_kgcoop_keys(module, state_dict, prefix, *args):
    for key in [k for k in state_dict if k[len(prefix):].startswith(UNUSED_KEY_PREFIXES)]:
        state_dict.pop(key)


class KgCoOpCLIP(CoOpCLIP):
    """CoOp's model that keeps the text features of its last training forward for the loss."""

    def __init__(self, coop_model: CoOpCLIP, anchor_features):
        super().__init__(coop_model.encoder, coop_model.tower, coop_model.prompt_learner)
        self.__dict__["anchor_features"] = anchor_features  # fixed, never saved
        self.last_text_features = None

    def text_features(self):
        feats = super().text_features()
        self.last_text_features = feats if torch.is_grad_enabled() else None
        return feats


@TRAINER_REGISTRY.register()
class KgCoOp(CoOp):
    """Knowledge-guided Context Optimization (KgCoOp), https://arxiv.org/abs/2303.13283."""

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        node = trainer_node(cfg, "KGCOOP")
        if float(node.W) < 0:
            raise ValueError(f"TRAINER.KGCOOP.W must be at least 0 (got {node.W}); KgCoOp's scripts use 8.0.")

    def build_model(self):
        super().build_model()
        dataset = self.cfg.DATASET.NAME
        self.anchor_template = anchor_template(dataset)
        names = [class_text(c) for c in self.dm.dataset.classnames]
        anchor = self.model.encoder.encode_text([self.anchor_template.format(n) for n in names])
        self.model = KgCoOpCLIP(self.model, anchor)
        self.model.prompt_learner.register_load_state_dict_pre_hook(_drop_unused_kgcoop_keys)
        print(f'KgCoOp: anchor prompt "{self.anchor_template}" ({dataset}), '
              f"lambda (TRAINER.KGCOOP.W) {float(self.cfg.TRAINER.KGCOOP.W)}")

    def compute_loss(self, output, label):
        kg = knowledge_guided_term(self.model.last_text_features, self.model.anchor_features)
        return F.cross_entropy(output, label) + float(self.cfg.TRAINER.KGCOOP.W) * kg

    def extra_results(self):
        results = super().extra_results()
        results["kgcoop"] = {"w": float(self.cfg.TRAINER.KGCOOP.W), "anchor_template": self.anchor_template}
        results["trainable_params"] = results["coop"]["trainable_params"]
        return results
