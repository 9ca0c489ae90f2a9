"""AR (Chen et al.): a padding prompt (image at 192 inside a 16-px sigmoid frame), one template."""
from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config

from .base import TemplateTrainer
from .vr_keys import add_common_keys


@register_config
def _ar_keys(cfg):
    add_common_keys(ensure_node(cfg, "TRAINER.AR"), prompt="padding", input_size=192, templates="vr",
                    batch_size_1shot=16)


@TRAINER_REGISTRY.register()
class AR(TemplateTrainer):
    NODE = "AR"
    NEEDS_TEXT_ENCODER = False  # on a classifier: a fixed random label map (trainers/classifier_source.py)
