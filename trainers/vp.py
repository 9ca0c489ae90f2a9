"""VP (Bahng et al.): a watermark prompt (30-px frame on the normalised 224 image), one template."""
from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config

from .base import TemplateTrainer
from .vr_keys import add_common_keys


@register_config
def _vp_keys(cfg):
    add_common_keys(ensure_node(cfg, "TRAINER.VP"), prompt="watermark", input_size=224, pad=30, templates="vr",
                    batch_size_1shot=16)


@TRAINER_REGISTRY.register()
class VP(TemplateTrainer):
    NODE = "VP"
    NEEDS_TEXT_ENCODER = False  # on a classifier: a fixed random label map (trainers/classifier_source.py)
