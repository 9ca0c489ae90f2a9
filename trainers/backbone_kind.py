"""Which backbones a trainer can run on: one rule over the trainer registry.

A trainer class declares ``NEEDS_TEXT_ENCODER``: True (the default, also for plugins that do not say) when
it scores texts (zero-shot, DVP, AttrVR, the CoOp family, feature heads initialised from text); False when
it only needs images in and logits or features out (VP, AR, ILM-VP, BLM, BLM+, the linear probe), so it also
runs on a classifier backbone (backbones/classifiers.py), whose source classes a label mapping reads.
"""


def needs_text_encoder(trainer_cls) -> bool:
    return bool(getattr(trainer_cls, "NEEDS_TEXT_ENCODER", True))


def check_backbone_kind(trainer_cls, cfg):
    """Refuse a classifier backbone for a trainer that needs a text encoder (before weights or data load)."""
    from backbones.classifiers import is_classifier

    name = cfg.MODEL.BACKBONE.NAME
    if is_classifier(name) and needs_text_encoder(trainer_cls):
        raise ValueError(
            f"{cfg.TRAINER.NAME} needs a text encoder, but MODEL.BACKBONE.NAME {name} is a classifier backbone "
            f"(no text tower). On a classifier run VP, AR, ILMVP, BLM, BLMPlus or LinearProbe; or use a CLIP "
            f"backbone for {cfg.TRAINER.NAME}.")


def frozen_backbone(backbone):
    """The frozen wrapper the VR and feature trainers use: FrozenClassifier or FrozenCLIP."""
    from vr import FrozenCLIP
    from vr.classifier import FrozenClassifier

    return FrozenClassifier(backbone) if getattr(backbone, "kind", "") == "classifier" else FrozenCLIP(backbone)


def is_classifier_encoder(encoder) -> bool:
    return bool(getattr(encoder, "IS_CLASSIFIER", False))
