"""VPT (deep): visual prompt tuning of CLIP's image transformer (Jia et al., ECCV 2022) as the MaPLe code
base runs it ("Deep Vision Prompting" in MaPLe's README), with CLIP's fixed text classifier.

Learned: N_CTX_VISION tokens appended after the positional embedding and replaced before each of the first
PROMPT_DEPTH_VISION image blocks (1: VPT-shallow), N(0, 0.02) (trainers/independent_prompts.py). The class
texts are "CTX_INIT {name}." ("a photo of a {name}.", the official code's fixed prefix), encoded once by the
frozen text tower. Parameters at ViT-B/16: J_v * n_v * 768 (8 tokens, depth 12: 73,728). Deviations: the
official code hard-codes "a photo of a" and ignores CTX_INIT (here CTX_INIT is that prefix, the same by
default); CLIP runs in fp32 in both (here PREC fp16 = CUDA fp16 autocast); PREC amp works (broken in the
official code). New classes: yes, the prompts kept and the evaluated class names encoded.
"""
import torch
import torch.nn as nn

from engine import TRAINER_REGISTRY
from engine.extend import register_config
from vr.text import class_text

from .independent_prompts import DeepPromptCLIP, DeepPromptTrainer, add_prompt_keys
from .ivlp import IVLP_NOTES


@register_config
def _vpt_keys(cfg):
    add_prompt_keys(cfg, "VPT", 0, n_vision=2, depth_text=0, depth_vision=1, text=False)  # the official defaults


class FixedText(nn.Module):
    """The prompt learner of VPT: no text parameter; the image prompts are added to it. ``features`` (C, D)
    normalised, fixed, never saved."""

    text_prompts = ()
    csc = False  # CoOp's check before scoring other classes: nothing here is per class

    def __init__(self, features):
        super().__init__()
        self.register_buffer("features", features, persistent=False)


class VPTCLIP(DeepPromptCLIP):
    """Deep image prompts scored against CLIP's fixed text features."""

    def text_features(self):
        return self.prompt_learner.features


@TRAINER_REGISTRY.register()
class VPT(DeepPromptTrainer):
    """Visual Prompt Tuning, deep (VPT), https://arxiv.org/abs/2203.12119 (CLIP image tower, fixed text)."""

    NODE = "VPT"
    LEARNS_TEXT = False
    NOTES = ("the text prefix is CTX_INIT (official: 'a photo of a' hard-coded, CTX_INIT unused)",) + IVLP_NOTES

    def build_text(self, encoder, tower, learner_node):
        prefix = str(self.node.CTX_INIT).replace("_", " ").strip()
        self.class_texts = [f"{prefix} {class_text(c)}." for c in self.dm.dataset.classnames]
        print(f'{self.NODE}: fixed class texts "{self.class_texts[0]}", ...')
        with torch.no_grad():
            return FixedText(encoder.encode_text(self.class_texts))

    def wrap_model(self, encoder, tower, learner):
        return VPTCLIP(encoder, tower, learner)
