"""ZeroshotCLIP: frozen CLIP with CoOp's per-dataset template; nothing is trained.

Run with ``--eval-only`` and no ``--model-dir``. Images go through the same [0,1] pipeline as the VR
trainers (Resize + CenterCrop at the backbone's size) and the "none" prompt only normalises them.
"""
from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config

from .base import TemplateTrainer
from .vr_keys import add_common_keys


@register_config
def _zsclip_keys(cfg):
    add_common_keys(ensure_node(cfg, "TRAINER.ZEROSHOTCLIP"), prompt="none", input_size=224, templates="coop")


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(TemplateTrainer):
    NODE = "ZEROSHOTCLIP"
    TRAINS = False
    RUN_COST = "eval"
    SCRIPT_NAME = "zsclip"
