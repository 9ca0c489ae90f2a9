"""IVLP: independent vision-language deep prompts on a frozen CLIP, the baseline of MaPLe (Khattak et al.,
CVPR 2023, its "Independent V-L Prompting") and of PromptSRC (ICCV 2023), trained in CoOp's protocol.

Learned, with nothing coupling the towers (trainers/independent_prompts.py): text prompts in the first
PROMPT_DEPTH_TEXT blocks (N_CTX_TEXT tokens; the layer-0 one starts as the first tokens of "a photo of a")
and image prompts in the first PROMPT_DEPTH_VISION blocks (N_CTX_VISION tokens, appended after the
positional embedding). PROMPT_DEPTH_VISION 0 with N_CTX_VISION 0 is "deep language prompting". Parameters
at ViT-B/16: J_t * n_t * 512 + J_v * n_v * 768 (2+2 tokens, depth 12: 30,720; 4+4, depth 9: 46,080).
Deviations: CLIP and the prompts stay fp32 (open_clip weights), PREC fp16 = CUDA fp16 autocast (the
official code keeps CLIP in fp16 and casts the prompts); PREC amp works (broken in the official code);
the official checkpoints (the whole CLIP state_dict) are not read. New classes: yes, with the evaluated
class names (nothing learned is class-specific).
"""
from engine import TRAINER_REGISTRY
from engine.extend import register_config

from .independent_prompts import DeepPromptTrainer, add_prompt_keys

IVLP_NOTES = ("CLIP and the prompts stay fp32; PREC fp16 = CUDA fp16 autocast (official: fp16 CLIP weights)",
              "checkpoints hold the learned prompts only (official: the whole model)")


@register_config
def _ivlp_keys(cfg):
    add_prompt_keys(cfg, "IVLP", n_text=2, n_vision=2, depth_text=9, depth_vision=9)  # the official defaults


@TRAINER_REGISTRY.register()
class IVLP(DeepPromptTrainer):
    """Independent Vision-Language Prompting (IVLP), https://arxiv.org/abs/2210.03117 (MaPLe's baseline)."""

    NODE = "IVLP"
    NOTES = IVLP_NOTES
