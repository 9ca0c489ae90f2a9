"""TaskRes (Yu et al., "Task Residual for Tuning Vision-Language Models", CVPR 2023, arXiv 2211.10277): a learned
residual X (C x D, zero at the start) on a frozen text classifier T, W = T + alpha X, logits = s cos(f, W_c).

A feature-baseline head (trainers/features.py): CLIP is frozen and only the C x D residual learns, from the
frozen image features of augmented images re-encoded every step (RandomResizedCrop 0.08-1 + flip, as Dassl).
As the public code (geekyutao/TaskRes, trainers/taskres.py, configs, train_regular.sh / train_enhance.sh):
- T (regular base): per class, the UNnormalised text features averaged over templates: CoOp's per-dataset
  template (ImageNet: the 7 Tip-Adapter templates plus "a photo of a {}."), class names as given;
- T (enhanced base, TaskRes*): the same with CLIP's text projection replaced by a released per-dataset,
  per-shot matrix, ENHANCED_BASE (the file's state_dict "weight", transposed); a missing file is an ERROR;
- alpha = RESIDUAL_SCALE 0.5; with SCRIPT_DEFAULTS the scripts' per-dataset values replace the configured
  ones (alpha 1.0 on OxfordFlowers, lr 2e-4 on ImageNet), printed and recorded in results.json;
- Adam (Dassl: coupled weight decay 5e-4), cosine per epoch after 1 constant warm-up epoch at 1e-5, batch 256,
  100 epochs at 1/2/4 shots (configs/trainers/TaskRes/*_ep100.yaml), 200 at 8/16; the last epoch is tested.
Deliberate differences: T is computed in fp32 (the code: fp16 CLIP, then cast) and the enhanced projection is
loaded at any precision (the code loads it only with PREC fp16); every training image is used every epoch
(no drop_last) with seeded order and augmentation (resume-exact); the K-shot sample is the toolkit's.
New classes: no (X has one row per training class), said in one error. A subset of the training classes
(ImageNet -> ImageNet-A / -R) is scored on their rows of T and X, as the code does at load time: the shared
mechanism of the per-class feature heads (trainers/class_subset.py), classes matched by WordNet id.
"""
import os

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY, build_optimizer
from engine.data_identity import sha256_file
from engine.extend import ensure_node, register_config
from engine.schedulers import build_lr_scheduler
from vr.text import templates_for

from .class_subset import head_run
from .features import TIP_IMAGENET_TEMPLATES, FeatureTrainer
from .pipeline import augment_seed, full_pass_loader, set_loader_epoch

# The public scripts' per-dataset settings (train_regular.sh / train_enhance.sh), used with SCRIPT_DEFAULTS.
SCRIPT_SCALE = {"OxfordFlowers": 1.0}
SCRIPT_LR = {"ImageNet": 2e-4}
SCRIPT_EPOCHS = {1: 100, 2: 100, 4: 100, 8: 200, 16: 200}


@register_config
def _taskres_keys(cfg):
    node = ensure_node(cfg, "TRAINER.TASKRES")
    node.RESIDUAL_SCALE = 0.5  # alpha
    node.ENHANCED_BASE = ""  # "": regular base; else the released projection file ({dataset}, {shots} filled in)
    node.SCRIPT_DEFAULTS = True  # the scripts' per-dataset alpha (OxfordFlowers 1.0) and lr (ImageNet 2e-4)


def base_templates(dataset):
    """TaskRes's templates: CoOp's per-dataset one; ImageNet: the 7 Tip-Adapter ones plus it."""
    own = templates_for(dataset, "coop")
    return list(TIP_IMAGENET_TEMPLATES) + own if dataset == "ImageNet" else own


def enhanced_base_path(cfg):
    """The ENHANCED_BASE file of this run ("" for the regular base), for the dataset and shots of the head (an
    evaluated checkpoint's training run: trainers/class_subset.head_run); a missing file is an error."""
    pattern = str(cfg.TRAINER.TASKRES.ENHANCED_BASE or "").strip()
    if not pattern or pattern.lower() == "none":
        return ""
    dataset, shots = head_run(cfg, TaskRes.CLASS_TRANSFER)
    path = pattern.format(dataset=dataset, shots=shots)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"TRAINER.TASKRES.ENHANCED_BASE names {path}, which does not exist. Download TaskRes's released "
            f"enhanced bases (strong_base/<Dataset>/rn50_<K>shots/model.pth.tar, RN50 only) and give the file, "
            f'or a pattern with {{dataset}} and {{shots}}; or set it to "" for the regular base.')
    return path


def load_projection(path, width, embed_dim):
    """The released text projection (width x embed_dim) from the file's state_dict "weight" (embed_dim x width)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        weight = state["weight"]
    except Exception as err:  # unreadable, or not a TaskRes enhanced-base file
        raise ValueError(f"{path} is not a TaskRes enhanced-base file (a checkpoint whose state_dict holds the text "
                         f"projection as 'weight'): {type(err).__name__}: {err}") from err
    if tuple(weight.shape) != (embed_dim, width):
        raise ValueError(f"The enhanced base {path} projects {weight.shape[1]} -> {weight.shape[0]}, this backbone's "
                         f"text tower {width} -> {embed_dim} (the released files are for RN50).")
    return weight.t().float()


@torch.no_grad()
def template_mean_features(model, tokenizer, classnames, templates, projection=None):
    """(C, D) UNnormalised text features averaged over ``templates`` (fp32); ``projection`` replaces CLIP's
    text projection for the call (TaskRes's enhanced base)."""
    device = next(model.parameters()).device
    proj = model.text_projection
    saved = proj.detach().clone() if projection is not None else None
    try:
        if projection is not None:
            proj.data.copy_(projection.to(proj))
        rows = []
        with torch.autocast(device.type, enabled=False):
            for name in classnames:
                tokens = tokenizer([t.format(name) for t in templates]).to(device)
                rows.append(model.encode_text(tokens).float().mean(dim=0))
    finally:
        if saved is not None:
            proj.data.copy_(saved)
    return torch.stack(rows)


class TaskResHead(nn.Module):
    """W = T + alpha X (rows normalised) scores normalised image features; only X is a parameter (and saved)."""

    def __init__(self, base, alpha, logit_scale):
        super().__init__()
        self.register_buffer("base_text_features", base, persistent=False)
        self.text_feature_residuals = nn.Parameter(torch.zeros_like(base))  # TaskRes's name
        self.alpha = float(alpha)
        self.register_buffer("logit_scale", logit_scale.detach().clone().float(), persistent=False)
        self.register_load_state_dict_pre_hook(TaskResHead._drop_saved_base)

    @staticmethod
    def _drop_saved_base(module, state_dict, prefix, *args):
        state_dict.pop(prefix + "base_text_features", None)  # TaskRes's own checkpoints carry T: rebuilt here

    def classifier(self):
        return F.normalize(self.base_text_features + self.alpha * self.text_feature_residuals, dim=-1)

    def forward(self, features):
        return self.logit_scale * F.normalize(features, dim=-1) @ self.classifier().t()


@TRAINER_REGISTRY.register()
class TaskRes(FeatureTrainer):
    """Task residual on CLIP's text classifier (TaskRes; TaskRes* with ENHANCED_BASE)."""

    NODE = "TASKRES"
    MODEL_NAME = "taskres"
    HEAD_KIND = "task_residual"
    PER_CLASS = "the residual has one learned row per training class"

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER.TASKRES
        if float(node.RESIDUAL_SCALE) <= 0:
            raise ValueError(f"TRAINER.TASKRES.RESIDUAL_SCALE must be > 0 (got {node.RESIDUAL_SCALE}); TaskRes: 0.5.")
        enhanced_base_path(cfg)  # a missing file fails before CLIP and the data are loaded

    def settings(self):
        """(alpha, lr, where from) of this run: the scripts' per-dataset values with SCRIPT_DEFAULTS."""
        node, dataset, lr = self.node, self.head_dataset, float(self.cfg.OPTIM.LR)
        alpha = float(node.RESIDUAL_SCALE)
        if not node.SCRIPT_DEFAULTS:
            return alpha, lr, "config"
        return SCRIPT_SCALE.get(dataset, alpha), SCRIPT_LR.get(dataset, lr), "scripts (SCRIPT_DEFAULTS)"

    def build_data_loader(self):
        super().build_data_loader()
        cfg = self.cfg
        seed = int(cfg.SEED) if cfg.SEED >= 0 else 0
        self.train_loader_x = self.dm.train_loader_x = full_pass_loader(
            cfg, self.dm.dataset.train_x, self.transforms[self.TRAIN_TRANSFORM], seed=augment_seed(cfg, seed))
        self.alpha, self.lr, self.source = self.settings()
        expected = SCRIPT_EPOCHS.get(int(cfg.DATASET.NUM_SHOTS))
        if expected and expected != int(cfg.OPTIM.MAX_EPOCH):
            print(f"Note: TaskRes's scripts train {expected} epochs at {cfg.DATASET.NUM_SHOTS} shots; this run uses "
                  f"OPTIM.MAX_EPOCH = {cfg.OPTIM.MAX_EPOCH}.")

    def build_head(self, classnames):
        dataset, model = self.head_dataset, self.encoder.model
        templates = base_templates(dataset)
        self.enhanced = enhanced_base_path(self.cfg)
        self._enhanced_digest = sha256_file(self.enhanced)[:16] if self.enhanced else ""  # once: every save records it
        projection = None
        if self.enhanced:
            width, embed_dim = model.text_projection.shape
            projection = load_projection(self.enhanced, int(width), int(embed_dim))
            print(f"TaskRes*: enhanced base from {self.enhanced} ({projection.numel():,} projection entries)")
        base = template_mean_features(model, self.encoder.tokenizer, classnames, templates, projection)
        print(f"TaskRes: base from {len(templates)} template(s) {templates}; alpha {self.alpha}, lr {self.lr} "
              f"({self.source})")
        return TaskResHead(base, self.alpha, self.encoder.logit_scale)

    def build_optimizer_and_scheduler(self, head):
        optim_cfg = self.cfg.OPTIM.clone()
        optim_cfg.defrost()
        optim_cfg.LR = self.lr
        optim = build_optimizer(head, optim_cfg)
        return optim, build_lr_scheduler(optim, optim_cfg)  # stepped once per epoch, as Dassl

    def before_epoch(self):
        super().before_epoch()
        set_loader_epoch(self.train_loader_x, self.epoch)

    def head_identity(self):
        """The base a residual was learned on: templates and the enhanced file's content (its sha256)."""
        return {"residual_scale": self.alpha, "enhanced_base_sha256": self._enhanced_digest,
                "base_templates": base_templates(self.head_dataset)}

    def identity_files(self):
        """The enhanced base file, whose content (not its path) is recorded with the data identity."""
        return [("enhanced_base", self.enhanced)] if self.enhanced else []

    def method_record(self):
        return {"residual_scale": self.alpha, "lr": self.lr, "settings_from": self.source,
                "enhanced_base": self.enhanced or "", "base_templates": base_templates(self.head_dataset),
                "base": "enhanced (released projection)" if self.enhanced else "regular (CLIP's template mean)"}
