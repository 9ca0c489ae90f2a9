"""CoCoOp: conditional context optimisation (Zhou et al., "Conditional Prompt Learning for
Vision-Language Models", CVPR 2022, arXiv 2203.05557), CoOp with an image-conditioned context.

A meta-net h (Linear d_v -> d_v/16, ReLU, Linear d_v/16 -> text width) maps the normalised image feature
f_b to a shift pi_b added to every context token: image b's prompt of class c is
[SOS][v_1 + pi_b .. v_M + pi_b][class tokens][.][EOS]. Each image thus has its own C text features
g_{b,c}; logit_{b,c} = s * <f_b, g_{b,c}>. Trained: the context and the meta-net (35,360 parameters at
ViT-B/16 with M = 4). The text tower runs B * C sequences per batch (one image at a time, as CoCoOp).

Built on trainers/coop.py, coop_model.py (prompt learner, text forward, precision, checkpoints): the meta-net is a
submodule ``meta_net`` (linear1, relu, linear2) of the prompt learner, so a checkpoint holds ``ctx`` and
``meta_net.*`` under prompt_learner/ as CoCoOp's do, and CoCoOp's fixed token vectors are dropped on load.
Deviations: the context settings are TRAINER.COOP.N_CTX / CTX_INIT / PREC (CoCoOp's node is
TRAINER.COCOOP); CLIP and the meta-net stay fp32 (open_clip weights), PREC fp16 = CUDA autocast (CoCoOp
casts the meta-net to fp16); CSC and class-token positions other than "end" are refused (CoCoOp has
neither). New classes: yes, swap in the class names (the meta-net is class-agnostic).
"""
from collections import OrderedDict

import torch
import torch.nn as nn

from engine import TRAINER_REGISTRY

from .coop import CoOp
from .coop_model import CoOpCLIP
from .features import count_trainable


def build_meta_net(vis_dim, width):
    """CoCoOp's meta-net: d_v -> d_v/16 -> width, with biases (its parameter names)."""
    hidden = max(int(vis_dim) // 16, 1)
    return nn.Sequential(OrderedDict([("linear1", nn.Linear(vis_dim, hidden)), ("relu", nn.ReLU(inplace=True)),
                                      ("linear2", nn.Linear(hidden, width))]))


def conditioned_context(ctx, shift):
    """(M, D) context and (B, D) per-image shifts -> (B, M, D): v_m + pi_b for every token m."""
    return ctx.unsqueeze(0) + shift.unsqueeze(1)


class CoCoOpCLIP(CoOpCLIP):
    """Frozen CLIP + prompt learner with a meta-net -> class logits, one text pass per image."""

    def prompts(self, ctx):
        """(M, D) context of one image -> (C, L, D) prompt embeddings (class name at the end)."""
        learner = self.prompt_learner
        fixed = learner.token_embedding
        index = learner.ctx_index.unsqueeze(-1).expand(-1, -1, fixed.shape[-1])
        return fixed.scatter(1, index, ctx.to(fixed.dtype).unsqueeze(0).expand(fixed.shape[0], -1, -1))

    def forward(self, image):
        learner = self.prompt_learner
        image_features = self.encoder.encode_image(image).float()  # normalised
        contexts = conditioned_context(learner.ctx, learner.meta_net(image_features))
        logits = []
        for feature, ctx in zip(image_features, contexts, strict=False):
            text = self.tower(self.prompts(ctx), learner.tokenized_prompts).float()
            text = text / text.norm(dim=-1, keepdim=True)
            logits.append(self.encoder.logit_scale * feature @ text.t())
        return torch.stack(logits)


@TRAINER_REGISTRY.register()
class CoCoOp(CoOp):
    """Conditional Context Optimization (CoCoOp), https://arxiv.org/abs/2203.05557."""

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        node = cfg.TRAINER.COOP
        if node.CSC:
            raise ValueError("CoCoOp learns one context shared by all classes: set TRAINER.COOP.CSC False.")
        if node.CLASS_TOKEN_POSITION != "end":
            raise ValueError(f'CoCoOp puts the class name at the end of the prompt: set '
                             f'TRAINER.COOP.CLASS_TOKEN_POSITION "end" (got "{node.CLASS_TOKEN_POSITION}").')

    def extend_model(self, coop):
        """The meta-net joins CoOp's prompt learner, so the one registration covers context and meta-net."""
        learner = coop.prompt_learner
        vis_dim = int(coop.encoder.model.visual.output_dim)
        learner.add_module("meta_net", build_meta_net(vis_dim, coop.tower.width).to(learner.ctx.device))
        self.trainable_params = count_trainable(learner)
        hidden = learner.meta_net.linear1.out_features
        print(f"CoCoOp: meta-net {vis_dim} -> {hidden} -> {coop.tower.width}; trained: the context and the "
              f"meta-net ({self.trainable_params:,} parameters)")
        return CoCoOpCLIP(coop.encoder, coop.tower, learner)

    def extra_results(self):
        results = super().extra_results()
        results["coop"]["trainable_params"] = self.trainable_params
        results["trainable_params"] = self.trainable_params
        return results
