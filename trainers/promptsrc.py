"""PromptSRC: prompting with self-regulating constraints (Khattak et al., "Self-regulating Prompts:
Foundational Model Adaptation without Forgetting", ICCV 2023, arXiv 2307.06948), IVLP's deep prompts
(trainers/ivlp.py) regularised towards the frozen CLIP and aggregated over epochs.

Loss (the official code's): CE(s f~ w~^T, y) + IMAGE_LOSS_WEIGHT * mean|f~ - f|_1 + TEXT_LOSS_WEIGHT *
mean|w~ - w^ens|_1 + sum KL(p_zs || p) / (B C), with f~, w~ the prompted normalised features, f the frozen
CLIP's normalised image features of the same batch, w^ens the frozen text features averaged (unnormalised)
over 60 of CLIP's ImageNet templates and normalised (once, at the first training step, for the training classes), and
p_zs = softmax(s f w^ens^T), p = softmax(logits), temperature 1. After every epoch the prompts enter the
Gaussian aggregation (trainers/gpa.py: GPA_MEAN, GPA_STD); after the last the aggregate is the model.
Parameters: those of IVLP (4+4 tokens, depth 9: 46,080 at ViT-B/16). Deviations: GPA sums the learned
prompts only (official: the whole state_dict, frozen fp16 CLIP included) and resumes exactly; the 60
templates are open_clip's first 60 (the official list holds the same, "a photo of a {}." moved first);
CLIP, prompts and both frozen encoders stay fp32 (PREC fp16 = CUDA fp16 autocast; official: fp16 CLIP);
PREC amp keeps the regularisers (broken in the official code). New classes: as IVLP (the regularisers
are training-only).
"""
import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from engine import TRAINER_REGISTRY
from engine.extend import register_config
from vr.text import class_text

from .gpa import GaussianAggregate, gaussian_weights
from .independent_prompts import DeepPromptCLIP, DeepPromptTrainer, add_prompt_keys
from .ivlp import IVLP_NOTES

# PromptSRC's trainers/imagenet_templates.py: the first 60 of CLIP's 80 ImageNet templates (another order)
PROMPTSRC_TEMPLATES = tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES[:60])


@register_config
def _promptsrc_keys(cfg):
    node = add_prompt_keys(cfg, "PROMPTSRC", n_text=4, n_vision=4, depth_text=9, depth_vision=9)
    node.TEXT_LOSS_WEIGHT = 25.0  # lambda of mean |w~ - w^ens|_1
    node.IMAGE_LOSS_WEIGHT = 10.0  # lambda of mean |f~ - f|_1
    node.GPA_MEAN = 15.0  # GPA: the epoch the Gaussian weights peak at
    node.GPA_STD = 1.0  # GPA: their spread in epochs


@torch.no_grad()
def ensemble_text_features(encoder, classnames, templates=PROMPTSRC_TEMPLATES):
    """(C, D) normalised mean over ``templates`` of the frozen CLIP's unnormalised text features."""
    total = 0.0
    with torch.autocast(encoder.device.type, enabled=False):
        for template in templates:
            tokens = encoder.tokenizer([template.format(class_text(c)) for c in classnames]).to(encoder.device)
            total = total + encoder.model.encode_text(tokens).float()
    return F.normalize(total / len(templates), dim=-1)


def self_regulating_terms(logits, image_features, text_features, frozen_image, frozen_text, logit_scale):
    """{"image": mean L1, "text": mean L1, "logits": sum KL(p_zs || p) / numel} of one batch (unweighted)."""
    zero_shot_logits = logit_scale * frozen_image @ frozen_text.t()
    kl = F.kl_div(F.log_softmax(logits.float(), dim=1), F.log_softmax(zero_shot_logits.float(), dim=1),
                  reduction="sum", log_target=True) / logits.numel()
    return {"image": F.l1_loss(image_features.float(), frozen_image.float()),
            "text": F.l1_loss(text_features.float(), frozen_text.float()), "logits": kl}


class PromptSRCCLIP(DeepPromptCLIP):
    """IVLP's model that also encodes each training batch with the frozen CLIP (no gradient)."""

    def forward(self, image):
        logits = super().forward(image)
        if torch.is_grad_enabled():
            with torch.no_grad():
                self.frozen_image = self.encoder.encode_image(image).float()
        return logits


@TRAINER_REGISTRY.register()
class PromptSRC(DeepPromptTrainer):
    """Prompting with Self-regulating Constraints (PromptSRC), https://arxiv.org/abs/2307.06948."""

    NODE = "PROMPTSRC"
    NOTES = ("GPA aggregates the learned prompts only (official: the whole state_dict, frozen fp16 CLIP "
             "included) and its running sum is in every checkpoint (exact resume)",
             "frozen text ensemble: open_clip's first 60 ImageNet templates (the official 60, another order)",
             *IVLP_NOTES)

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        node = cfg.TRAINER.PROMPTSRC
        for key in ("TEXT_LOSS_WEIGHT", "IMAGE_LOSS_WEIGHT"):
            if float(node[key]) < 0:
                raise ValueError(f"TRAINER.PROMPTSRC.{key} must be at least 0 (got {node[key]}).")
        gaussian_weights(int(cfg.OPTIM.MAX_EPOCH) or 1, float(node.GPA_MEAN), float(node.GPA_STD))

    def wrap_model(self, encoder, tower, learner):
        self._frozen_text = None
        weights = gaussian_weights(int(self.cfg.OPTIM.MAX_EPOCH) or 1, float(self.node.GPA_MEAN),
                                   float(self.node.GPA_STD))  # MAX_EPOCH 0 (evaluation only): as check_cfg
        learner.gpa = GaussianAggregate(learner.named_parameters(), weights)
        print(f"PromptSRC: frozen text = mean of {len(PROMPTSRC_TEMPLATES)} templates; GPA weights over epochs "
              f"1 .. {len(weights)}: N(e; {self.node.GPA_MEAN}, {self.node.GPA_STD}^2), normalised")
        return PromptSRCCLIP(encoder, tower, learner)

    @property
    def frozen_text(self):
        """The frozen ensemble (C, D), encoded at its first use, a training step (outside autocast, no gradient:
        the values are the same whenever): an evaluation never encodes its 60 x C texts."""
        if self._frozen_text is None:
            self._frozen_text = ensemble_text_features(self.model.encoder, self.dm.dataset.classnames)
        return self._frozen_text

    def compute_loss(self, output, label):
        model, node = self.model, self.node
        image_features, text_features = model.last_features
        terms = self_regulating_terms(output, image_features, text_features, model.frozen_image, self.frozen_text,
                                      model.encoder.logit_scale)
        return (F.cross_entropy(output, label) + float(node.IMAGE_LOSS_WEIGHT) * terms["image"]
                + float(node.TEXT_LOSS_WEIGHT) * terms["text"] + terms["logits"])

    def after_epoch(self):
        """GPA before the epoch's checkpoint and test: add this epoch; after the last, load the aggregate."""
        gpa = self.model.prompt_learner.gpa
        gpa.add(self.epoch + 1)
        if self.epoch + 1 == self.max_epoch:
            print("PromptSRC: the Gaussian aggregate of the prompts is the final model")
            gpa.load_into_params()
        super().after_epoch()

    def extra_results(self):
        results = super().extra_results()
        node = self.node
        results["promptsrc"].update({"text_loss_weight": float(node.TEXT_LOSS_WEIGHT),
                                     "image_loss_weight": float(node.IMAGE_LOSS_WEIGHT),
                                     "gpa_mean": float(node.GPA_MEAN), "gpa_std": float(node.GPA_STD),
                                     "templates": len(PROMPTSRC_TEMPLATES)})
        return results
