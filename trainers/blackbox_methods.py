"""The black-box VR methods: BAR, black-box AR and black-box DVP-cls (zeroth-order settings: TRAINER.BLACKBOX).

BAR (Tsai et al. ICML'20), as BlackVIP's re-implementation for CLIP (reprogramming.py): a padding prompt with
the image at 194 inside a 15-px sigmoid frame at 224, CLIP's text classifier with CoOp's per-dataset template
(no multi-label mapping: the CLIP black box scores the target classes directly), RGF (q = 5, beta = 0.01),
focal loss (gamma 2), polynomially decaying step size. BlackBoxAR: AR's prompt and texts, trained through the
black box with SPSA-GC. BlackBoxDVP_CLS: DVP-cls's prompts, clusters and PRM through the black box with
SPSA-GC; the PRM needs only the description scores, so it counts them as DVP does (epoch 0: one query per
image and prompt; later epochs: the scores of the step's first evaluation, no extra query); the k-means
grouping embeds the descriptions once through ``embed_texts`` (counted as text queries).
"""
from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config

from .ar import AR
from .base import TemplateTrainer
from .blackbox import BlackBoxTrainer
from .dvp import DVP_CLS
from .vr_keys import add_common_keys


@register_config
def _bar_keys(cfg):
    add_common_keys(ensure_node(cfg, "TRAINER.BAR"), prompt="padding", input_size=194, templates="coop")


@TRAINER_REGISTRY.register()
class BAR(BlackBoxTrainer, TemplateTrainer):
    """BAR (Tsai et al. ICML'20) as BlackVIP re-implements it for CLIP: padding prompt, RGF, focal loss."""

    NODE = "BAR"
    SCRIPT_NAME = "bar"
    DEFAULT_OPTIMIZER = "rgf"
    DEFAULT_LOSS = "focal"


@TRAINER_REGISTRY.register()
class BlackBoxAR(BlackBoxTrainer, AR):
    """Black-box AR: AR's prompt and template (TRAINER.AR), CLIP as a black box, SPSA-GC."""

    SCRIPT_NAME = "blackbox_ar"


@TRAINER_REGISTRY.register()
class BlackBoxDVP_CLS(BlackBoxTrainer, DVP_CLS):
    """Black-box DVP-cls: DVP-cls's prompts, clusters and PRM (TRAINER.DVP_CLS), CLIP as a black box, SPSA-GC."""

    SCRIPT_NAME = "blackbox_dvp_cls"
    CLASS_TRANSFER = ""
