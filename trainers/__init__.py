"""Trainers, registered in the engine's TRAINER_REGISTRY by class name; importing this package also
registers their config nodes (TRAINER.<NAME>.*).

VR trainers (one model family, see vr/): ZeroshotCLIP, VP, AR, AttrVR, DVP_CSE, DVP_CLS, and the label-mapping
family ILMVP, BLM, BLMPlus (trainers/label_mapping.py), the black-box family BAR, BlackVIP,
BlackBoxAR, BlackBoxDVP_CLS (trainers/blackbox_methods.py, trainers/blackbox.py); shared code in
trainers/base.py. CoOp lives in trainers/coop.py when present; its variants CoCoOp (trainers/cocoop.py)
and KgCoOp (trainers/kgcoop.py) build on it, and so does MaPLe (trainers/maple.py; its deep-prompt forward
through CLIP's towers is vr/deep_prompts.py). Feature-based baselines (LinearProbe, LPPlusPlus, CLIPAdapter,
TipAdapter, TipAdapterF): heads on frozen CLIP features, shared code in trainers/features.py.
"""
import importlib
import os

from . import (ar, attrvr, blackbox_methods, clip_adapter, dvp, label_mapping, linear_probe, lpplusplus,  # noqa: F401
               tip_adapter, vp, zsclip)
from . import clip_lora, taskres  # noqa: F401  (CLIP-LoRA: LoRA in both encoders; TaskRes: a text-classifier residual)

for _module in ("coop", "cocoop", "kgcoop", "maple", "ivlp", "vpt", "promptsrc"):
    if os.path.exists(os.path.join(os.path.dirname(__file__), f"{_module}.py")):
        importlib.import_module(f"{__name__}.{_module}")
