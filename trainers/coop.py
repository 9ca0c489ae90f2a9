"""CoOp: context optimisation for a frozen CLIP (Zhou et al., "Learning to Prompt for Vision-Language
Models", IJCV 2022, arXiv 2109.01134), as the text-side baseline beside the visual reprogramming methods.

Each class prompt is ``[SOS][ctx_1..ctx_n][class tokens][.][EOS]`` in CLIP's token-embedding space; the
n context vectors are the only trained parameters (shared by all classes, or one set per class with CSC).
The prompts run through CLIP's frozen text transformer (positional embedding, causal mask, ln_final,
projection at the EOT token); logits = logit_scale * <normalised image feature, normalised text feature>.

Same semantics as CoOp's trainer and config node TRAINER.COOP (N_CTX, CSC, CTX_INIT, PREC,
CLASS_TOKEN_POSITION), with these deliberate differences (see also configs/trainers/CoOp/*.yaml):
- CLIP stays in fp32; PREC "fp16" runs forward passes (training and test) under CUDA fp16 autocast without
  loss scaling (CoOp: fp16 weights, no scaler), "amp" autocasts the training step with a GradScaler and
  tests in fp32 (as CoOp). On the CPU both fall back to fp32 with a printed note.
- CTX_INIT sets n_ctx to its number of tokens (CoOp counts words, the same for one-token words), and
  with CSC every class starts from its own copy of it (CoOp ignores CSC when CTX_INIT is given).
- Checkpoints hold the context vectors only; the fixed token embeddings are rebuilt from the class names
  and are dropped from older CoOp checkpoints on load (CoOp does this in load_model).
- The text features are computed once per evaluation (cached while the context is unchanged), not per
  test batch; training recomputes them every step as CoOp does.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY, TrainerX, build_optimizer, compute_accuracy, load_pretrained_weights
from engine.extend import ensure_node, register_config, trainer_node
from engine.schedulers import build_lr_scheduler
from vr.clip import FrozenCLIP

from .backbone_kind import check_backbone_kind
from .checkpoints import RunCheckpoints
from .clip_plumbing import PerEpochTestCurve, autocast, check_precision, load_backbone, precision_used, scaled_update
from .coop_model import CoOpCLIP, PromptLearner, TextTower, check_position
from .run_record import CheckpointError

if TYPE_CHECKING:
    import contextlib

    from yacs.config import CfgNode

    from backbones import ClipBackbone

MODEL_NAME = "prompt_learner"  # checkpoints: OUTPUT_DIR/prompt_learner/model.pth.tar-<epoch> (as CoOp)
PRECISIONS = ("fp16", "fp32", "amp")


@register_config
def _coop_keys(cfg: CfgNode) -> None:
    node = ensure_node(cfg, "TRAINER.COOP")
    node.N_CTX = 16  # number of context vectors
    node.CSC = False  # class-specific contexts
    node.CTX_INIT = ""  # initialisation words, e.g. "a photo of a" (then n_ctx = its number of tokens)
    node.PREC = "fp16"  # fp16, fp32, amp (fp16/amp autocast on CUDA only; fp32 on the CPU)
    node.CLASS_TOKEN_POSITION = "end"  # end, middle or front


def check_input_size(cfg: CfgNode, image_size: int, name: str) -> None:
    """INPUT.SIZE must be the backbone's input size (the loaders resize to it; CLIP's positions fit it)."""
    if int(cfg.INPUT.SIZE[0]) != image_size or int(cfg.INPUT.SIZE[1]) != image_size:
        raise ValueError(f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the {image_size}px input "
                         f"of {name}: set INPUT.SIZE ({image_size}, {image_size}).")


@TRAINER_REGISTRY.register()
class CoOp(PerEpochTestCurve, RunCheckpoints, TrainerX):
    """Context Optimization (CoOp), https://arxiv.org/abs/2109.01134."""

    CLASS_TRANSFER = "learned context kept, with the evaluated class names (CoOp's own behaviour)"
    NODE = "COOP"  # the config node under TRAINER that holds PREC (MaPLe: MAPLE)
    PRECISION_KEY, PRECISION_CHOICES = "PREC", PRECISIONS  # TRAINER.<NODE>.PREC and its choices

    @property
    def node(self) -> CfgNode:
        return self.cfg.TRAINER[self.NODE]

    def check_cfg(self, cfg: CfgNode) -> None:
        check_backbone_kind(type(self), cfg)  # a classifier for a text method: refused first
        node = trainer_node(cfg, "COOP")
        check_precision(node.PREC, PRECISIONS, "TRAINER.COOP.PREC")
        check_position(node.CLASS_TOKEN_POSITION)
        if not str(node.CTX_INIT).strip() and int(node.N_CTX) < 1:
            raise ValueError(f"TRAINER.COOP.N_CTX must be at least 1 (got {node.N_CTX}), or give CTX_INIT words.")

    def build_data_loader(self) -> None:
        """CLIP first: missing weights fail before the dataset is read."""
        self.backbone = load_backbone(self.cfg, self.device, self)
        self.check_backbone(self.backbone)
        super().build_data_loader()

    def check_backbone(self, backbone: ClipBackbone) -> None:
        """Backbone facts a variant needs, checked before the dataset is read (MaPLe: a ViT image tower)."""

    def build_model(self) -> None:
        cfg, node = self.cfg, self.cfg.TRAINER.COOP
        classnames = self.dm.dataset.classnames
        backbone = self.backbone
        encoder = FrozenCLIP(backbone)
        check_input_size(cfg, encoder.image_size, encoder.name)
        tower = TextTower(backbone.model, encoder.name)
        print("Building custom CLIP")
        learner = PromptLearner(classnames, tower, backbone.tokenizer, n_ctx=node.N_CTX, ctx_init=node.CTX_INIT,
                                csc=node.CSC, position=node.CLASS_TOKEN_POSITION)
        tower.check_against(backbone.model, learner.tokenized_prompts[:8], encoder.name)
        self.model = CoOpCLIP(encoder, tower, learner).to(self.device)
        print(f"CLIP is frozen (image and text encoders); trained: the context vectors "
              f"({learner.ctx.numel():,} parameters)")
        self.model = self.extend_model(self.model)
        self.register_learner(self.model.prompt_learner)

    def extend_model(self, model: CoOpCLIP) -> CoOpCLIP:
        """A variant's additions to CoOp's model before it is registered (CoCoOp: the meta-net)."""
        return model

    def register_learner(self, learner: torch.nn.Module) -> None:
        """The learned module's optional initial weights, optimiser, per-epoch schedule (as CoOp), checkpoint
        name and precision: the end of every CoOp-family build_model."""
        cfg = self.cfg
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(learner, cfg.MODEL.INIT_WEIGHTS)
        self.optim = build_optimizer(learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)  # stepped once per epoch, as CoOp
        self.register_model(MODEL_NAME, learner, self.optim, self.sched)
        self.setup_precision()

    def setup_precision(self) -> None:
        """Autocast and loss scaling of TRAINER.<NODE>.PREC (CUDA only; fp32 elsewhere, with a note)."""
        prec = self.node.PREC
        self.autocast_on = precision_used(prec, self.device) != "fp32"
        if prec != "fp32" and not self.autocast_on:
            print(f'Note: TRAINER.{self.NODE}.PREC "{prec}" needs CUDA; running in fp32 on the {self.device.type}.')
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_on and prec == "amp" else None

    def autocast(self, training: bool) -> contextlib.AbstractContextManager:
        """fp16 autocast for "fp16" (training and test) and "amp" (training only), on CUDA."""
        precision = precision_used(self.node.PREC, self.device)
        if precision == "amp" and not training:  # amp tests in fp32, as CoOp
            precision = "fp32"
        return autocast(self.device, precision)

    def forward_backward(self, batch: dict[str, Any]) -> dict[str, float]:
        image, label = self.parse_batch_train(batch)
        with self.autocast(training=True):
            output = self.model(image)
            loss = self.compute_loss(output, label)
        scaled_update(self, loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def compute_loss(self, output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (a hook for CoOp's variants, e.g. KgCoOp's regulariser)."""
        return F.cross_entropy(output, label)

    def parse_batch_train(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        with self.autocast(training=False):
            return self.model(input)

    # ---- the per-epoch test curve (TEST.PER_EPOCH; never the headline number) ------------------
    def before_train(self) -> None:
        super().before_train()
        self.resume_test_curve()

    def after_epoch(self) -> None:
        self.extend_test_curve()
        super().after_epoch()

    def extra_results(self) -> dict[str, Any]:
        """CoOp's settings for results.json (train.py adds them under "coop")."""
        node, learner = self.cfg.TRAINER.COOP, self.model.prompt_learner
        return {"coop": {"n_ctx": learner.n_ctx, "csc": learner.csc, "ctx_init": node.CTX_INIT,
                         "class_token_position": learner.position, "precision": node.PREC,
                         "autocast": bool(self.autocast_on), "trainable_params": learner.ctx.numel()},
                **self.loaded_results()}

    # ---- checkpoints: identity and other class sets (trainers/checkpoints.py) --------------------
    def prompt_identity(self) -> dict[str, Any]:
        node, learner = self.cfg.TRAINER.COOP, self.model.prompt_learner
        return {"kind": "coop_context", "n_ctx": int(learner.n_ctx), "csc": bool(learner.csc),
                "ctx_init": str(node.CTX_INIT), "class_token_position": learner.position}

    def check_other_classes(self, trained: Sequence[str], evaluated: Sequence[str]) -> None:
        super().check_other_classes(trained, evaluated)
        if self.model.prompt_learner.csc:
            raise CheckpointError("CoOp with class-specific contexts (TRAINER.COOP.CSC True) learned one context "
                                  "per training class, so it cannot score another class set. Evaluate it on its "
                                  "training classes, or train with CSC False.")

    def load_other_classes(self, name: str, checkpoint: dict[str, Any], trained: Sequence[str]) -> None:
        self._models[name].load_state_dict(checkpoint["state_dict"])  # the context only; names are this run's
