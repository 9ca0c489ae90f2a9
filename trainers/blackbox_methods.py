"""The black-box VR methods: BAR, BlackVIP, black-box AR and black-box DVP-cls (zeroth-order settings:
TRAINER.BLACKBOX).

BAR (Tsai et al. ICML'20), as BlackVIP's re-implementation for CLIP (reprogramming.py): a padding prompt with
the image at 194 inside a 15-px sigmoid frame at 224, CLIP's text classifier with CoOp's per-dataset template
(no multi-label mapping: the CLIP black box scores the target classes directly), RGF (q = 5, beta = 0.01),
focal loss (gamma 2), polynomially decaying step size. BlackVIP (Oh et al. CVPR'23, blackvip.py): the
coordinator (vr/coordinator.py: a frozen image encoder and a learned decoder making an input-dependent
prompt), CoOp's per-dataset template, SPSA-GC on the decoder, cross-entropy. BlackBoxAR: AR's prompt and
texts, trained through the black box with SPSA-GC. BlackBoxDVP_CLS: DVP-cls's prompts, clusters and PRM
through the black box with SPSA-GC; the PRM needs only the description scores, so it counts them as DVP
does (epoch 0: one query per image and prompt; later epochs: the scores of the step's first evaluation, no
extra query); the k-means grouping embeds the descriptions once through ``embed_texts`` (text queries).
"""
from typing import Any

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from vr.coordinator import CoordinatorPrompt, frozen_image_tower
from vr.frozen import FrozenBackbone

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


@register_config
def _blackvip_keys(cfg):
    node = ensure_node(cfg, "TRAINER.BLACKVIP")
    add_common_keys(node, prompt="coordinator", templates="coop")
    # the coordinator's frozen image encoder: a CLIP backbone name as MODEL.BACKBONE.NAME takes (open_clip model,
    # CoOp name, test-tiny, digits-tiny); "": MODEL.BACKBONE.NAME (a separate copy of its image tower only)
    node.ENCODER = ""
    node.ENCODER_WEIGHTS = ""  # its weights tag or file ("": the name's default; with ENCODER "": MODEL.BACKBONE's)
    node.SRC_DIM = 1568  # encoder features + learned trigger, read as (SRC_DIM / g^2, g, g), g = image size / 32
    node.P_EPS = 1.0  # prompt strength: clamp(x + P_EPS * prompt)


@TRAINER_REGISTRY.register()
class BlackVIP(BlackBoxTrainer, TemplateTrainer):
    """BlackVIP (Oh et al. CVPR'23): the coordinator's input-dependent prompt, trained by SPSA-GC."""

    NODE = "BLACKVIP"
    SCRIPT_NAME = "blackvip"

    def check_method_cfg(self, cfg):
        super().check_method_cfg(cfg)
        kind = cfg.TRAINER.BLACKVIP.PROMPT
        if kind != CoordinatorPrompt.kind:
            raise ValueError(f"BlackVIP's prompt is its coordinator: TRAINER.BLACKVIP.PROMPT must be "
                             f"{CoordinatorPrompt.kind!r}, got {kind!r}.")

    def encoder_source(self) -> tuple[str, str]:
        """(name, weights) of the coordinator's encoder."""
        node, backbone = self.vcfg, self.cfg.MODEL.BACKBONE
        if node.ENCODER:
            return str(node.ENCODER), str(node.ENCODER_WEIGHTS)
        return str(backbone.NAME), str(node.ENCODER_WEIGHTS or backbone.WEIGHTS)

    def coordinator_encoder(self) -> FrozenBackbone:
        if not hasattr(self, "_encoder"):
            from backbones import load_clip

            name, weights = self.encoder_source()
            print(f"BlackVIP coordinator: loading its frozen image encoder {name}"
                  + (f" ({weights})" if weights else ""))
            self._encoder = frozen_image_tower(load_clip(name, self.device, weights=weights))
        return self._encoder

    def make_prompts(self, num_prompts: int) -> CoordinatorPrompt:
        node = self.vcfg
        prompt = CoordinatorPrompt(self.clip.image_size, self.clip.mean, self.clip.std, num_prompts,
                                   encoder=self.coordinator_encoder(), src_dim=int(node.SRC_DIM),
                                   p_eps=float(node.P_EPS))
        return prompt.to(self.device)

    def run_record(self) -> dict[str, Any]:
        prompts = self.model.prompts
        name, weights = self.encoder_source()
        return {"coordinator": {"encoder": name, "encoder_weights": weights, "encoder_input": prompts.encoder_input,
                                "z_dim": prompts.decoder.z_dim, "src_dim": prompts.decoder.src_dim,
                                "p_eps": prompts.p_eps, "decoder_entries": prompts.num_trainable_entries()}}


@TRAINER_REGISTRY.register()
class BlackBoxAR(BlackBoxTrainer, AR):
    """Black-box AR: AR's prompt and template (TRAINER.AR), CLIP as a black box, SPSA-GC."""

    SCRIPT_NAME = "blackbox_ar"


@TRAINER_REGISTRY.register()
class BlackBoxDVP_CLS(BlackBoxTrainer, DVP_CLS):
    """Black-box DVP-cls: DVP-cls's prompts, clusters and PRM (TRAINER.DVP_CLS), CLIP as a black box, SPSA-GC."""

    SCRIPT_NAME = "blackbox_dvp_cls"
    CLASS_TRANSFER = ""
