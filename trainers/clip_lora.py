"""CLIP-LoRA (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language Models", CVPRW 2024, arXiv
2405.18541): low-rank adapters on the q, k, v attention projections of every block of both CLIP encoders
(vr/lora.py), trained with cross-entropy on s * cos(f, w_c), where every step encodes the augmented images AND
the prompts "a photo of a {name}." of all classes through the adapted encoders.

Protocol of the public code (MaxZanella/CLIP-LoRA, main.py, lora.py, run_utils.py): r 2, alpha 1 (scale
alpha / sqrt(r)), dropout 0.25 on the branch input; AdamW (lr 2e-4, betas 0.9/0.999, weight decay 1e-2) on the
A, B only; cosine from lr to 1e-6 over N_ITERS x shots iterations (500 x K), stepped every iteration, no
warm-up; batch 32 without drop_last; RandomResizedCrop(0.08-1, bicubic) + flip; logit scale 100; fp16 autocast
with a GradScaler; the last iteration is tested with the adapters merged into the weights.
Deliberate differences: the K-shot sample is the toolkit's (CoOp's split files), not the code's own draw;
CLIP's weights stay fp32 (open_clip) and PREC fp16 = CUDA fp16 autocast (fp32 on the CPU); the budget runs as
epochs over the training set, the last one cut at the budget (OPTIM.MAX_EPOCH is not used); the weight decay
is the fixed code's 1e-2 (the first release used 1e2: issue #1, fixed in commit 37a196d), and a value >= 1
is refused. The dropout and augmentation draws are seeded per iteration / sample, so a resumed run is exact.
New classes: yes, nothing learned is class-specific; each class is scored through its own prompt.
"""
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY, DataManager, TrainerX, build_optimizer
from engine.extend import ensure_node, register_config, trainer_node
from vr.clip import FrozenCLIP
from vr.lora import PROJECTIONS, apply_lora, block_indices, tower_blocks, towers_of
from vr.text import class_text

from .backbone_kind import check_backbone_kind
from .checkpoints import RunCheckpoints
from .clip_plumbing import PerEpochTestCurve, autocast, check_precision, load_backbone, precision_used, scaled_update
from .features import clip_transforms
from .pipeline import DATA_MANAGER_ATTRIBUTES, augment_seed, full_pass_loader, set_loader_epoch

MODEL_NAME = "lora"  # checkpoints: OUTPUT_DIR/lora/model.pth.tar-<epoch> (the A and B matrices only)
PRECISIONS = ("fp16", "fp32")
ETA_MIN = 1e-6  # the cosine's final lr (run_utils / lora.py)
NOTES = ("weight decay 1e-2 as the fixed code (commit 37a196d); the first release's 1e2 (issue #1) is refused",
         "K-shot sample from the toolkit's splits, not CLIP-LoRA's own draw from split_zhou_*.json")


@register_config
def _clip_lora_keys(cfg):
    node = ensure_node(cfg, "TRAINER.CLIPLORA")
    node.R = 2  # rank
    node.ALPHA = 1.0  # scale alpha / sqrt(R)
    node.DROPOUT = 0.25  # on the input of each low-rank branch
    node.ENCODER = "both"  # text | vision | both
    node.PARAMS = ["q", "k", "v"]  # adapted projections among q, k, v, o
    node.POSITION = "all"  # blocks: all | half-up | half-bottom | bottom | mid | up | top3 (12-block towers)
    node.N_ITERS = 500  # iterations per shot: the budget is N_ITERS x DATASET.NUM_SHOTS
    node.TEMPLATE = "a photo of a {}."  # one template for every dataset (dataset.template[0] in the code)
    node.LOGIT_SCALE = 100.0  # the code's fixed scale; 0: the backbone's logit_scale.exp()
    node.PREC = "fp16"  # fp16: CUDA autocast + GradScaler in training, autocast in tests | fp32


class LoRACLIP(nn.Module):
    """CLIP with LoRA in its attention -> class logits. Only ``adapters`` (the A, B) is a submodule."""

    def __init__(self, encoder: FrozenCLIP, adapters, tokens, logit_scale, text_adapted: bool = True):
        super().__init__()
        self.__dict__["encoder"] = encoder  # never saved; its attention holds the same A, B
        self.adapters = adapters
        self.register_buffer("tokens", tokens, persistent=False)
        self.logit_scale = float(logit_scale)
        self.text_adapted = bool(text_adapted)  # ENCODER "vision": the text tower stays the frozen one
        self._cache = None

    def text_features(self):
        """(C, D) normalised prompt features: with gradient every training step when the text tower has
        adapters; cached in no-grad use while the adapters are unchanged, and once for good (per autocast
        state) when it has none, as the reference computes them once before training."""
        autocast = torch.is_autocast_enabled(self.tokens.device.type)
        if not self.text_adapted:
            if self._cache is None or self._cache[0] != autocast:
                with torch.no_grad():
                    self._cache = (autocast, F.normalize(self.encoder.model.encode_text(self.tokens).float(), dim=-1))
            return self._cache[1]
        key = (tuple(p._version for p in self.adapters.parameters()), self.adapters.training, autocast)
        if not torch.is_grad_enabled() and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        feats = F.normalize(self.encoder.model.encode_text(self.tokens).float(), dim=-1)
        self._cache = None if torch.is_grad_enabled() else (key, feats)
        return feats

    def forward(self, images):
        f = F.normalize(self.encoder.model.encode_image(images).float(), dim=-1)
        return self.logit_scale * f @ self.text_features().t()


class BudgetView:
    """The first ``n`` batches of a loader (the last epoch of an iteration budget)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, int(n)

    def __len__(self):
        return min(self.n, len(self.loader))

    def __iter__(self):
        return itertools.islice(iter(self.loader), len(self))


@TRAINER_REGISTRY.register()
class CLIPLoRA(PerEpochTestCurve, RunCheckpoints, TrainerX):
    """Low-rank adapters in both CLIP encoders (CLIP-LoRA), https://arxiv.org/abs/2405.18541."""

    NODE = "CLIPLORA"
    SCRIPT_NAME = "clip_lora"
    PRECISION_KEY, PRECISION_CHOICES = "PREC", PRECISIONS  # TRAINER.CLIPLORA.PREC and its choices
    BUDGET_KEY = "TRAINER.CLIPLORA.N_ITERS"  # the training length (iterations per shot), not OPTIM.MAX_EPOCH
    CLASS_TRANSFER = ("adapters kept (none is class-specific); every evaluated class is scored by its own "
                      "prompt through the adapted text encoder")

    @property
    def node(self):
        return self.cfg.TRAINER.CLIPLORA

    def check_cfg(self, cfg):
        check_backbone_kind(type(self), cfg)  # a classifier for a text method: refused first
        node = trainer_node(cfg, "CLIPLORA")
        check_precision(node.PREC, PRECISIONS, "TRAINER.CLIPLORA.PREC")
        towers_of(node.ENCODER)
        bad = [p for p in node.PARAMS if p not in PROJECTIONS]
        if bad or not node.PARAMS:
            raise ValueError(f"TRAINER.CLIPLORA.PARAMS {list(node.PARAMS)}: choose among {', '.join(PROJECTIONS)} "
                             f"(CLIP-LoRA: q k v).")
        if int(node.R) < 1 or not 0.0 <= float(node.DROPOUT) < 1.0 or int(node.N_ITERS) < 1:
            raise ValueError(f"TRAINER.CLIPLORA: R ({node.R}) and N_ITERS ({node.N_ITERS}) must be at least 1 and "
                             f"DROPOUT ({node.DROPOUT}) in [0, 1).")
        if "{}" not in str(node.TEMPLATE):
            raise ValueError(f'TRAINER.CLIPLORA.TEMPLATE "{node.TEMPLATE}" has no {{}} for the class name.')
        if cfg.OPTIM.NAME != "adamw":
            raise ValueError(f'CLIP-LoRA trains with AdamW, but OPTIM.NAME is "{cfg.OPTIM.NAME}": set OPTIM.NAME '
                             f"adamw (configs/trainers/CLIPLoRA/).")
        if float(cfg.OPTIM.WEIGHT_DECAY) >= 1.0:
            raise ValueError(f"OPTIM.WEIGHT_DECAY {cfg.OPTIM.WEIGHT_DECAY} is CLIP-LoRA's first-release bug (1e2, "
                             f"issue #1; fixed to 1e-2 in commit 37a196d): set OPTIM.WEIGHT_DECAY 0.01.")

    # ---- data: CLIP first, then the seeded loader without drop_last, then the iteration budget ----------
    def build_data_loader(self):
        cfg, node = self.cfg, self.cfg.TRAINER.CLIPLORA
        backbone = load_backbone(cfg, self.device)
        for tower in towers_of(node.ENCODER):
            blocks = tower_blocks(backbone.model, tower)
            if blocks is None:
                raise ValueError(f"CLIP-LoRA adapts the attention of the {tower} transformer, and the backbone "
                                 f"{backbone.name} has none there: use a ViT backbone, or set "
                                 f"TRAINER.CLIPLORA.ENCODER text.")
            block_indices(node.POSITION, len(blocks))  # an unknown or misfit position fails here
        self.encoder = FrozenCLIP(backbone)
        tfm = clip_transforms(self.encoder)
        dm = DataManager(cfg, custom_tfm_train=tfm["dassl"], custom_tfm_test=tfm["test"])
        seed = int(cfg.SEED) if cfg.SEED >= 0 else 0
        self.full_loader = full_pass_loader(cfg, dm.dataset.train_x, tfm["dassl"], seed=augment_seed(cfg, seed))
        dm.train_loader_x = self.full_loader
        for name in DATA_MANAGER_ATTRIBUTES:
            setattr(self, name, getattr(dm, name))
        self.dm = dm
        self.total_iters = int(node.N_ITERS) * max(1, int(cfg.DATASET.NUM_SHOTS))
        self.iters_per_epoch = len(self.full_loader)
        self.max_epoch = math.ceil(self.total_iters / max(1, self.iters_per_epoch))
        print(f"CLIP-LoRA: {self.total_iters} iterations (N_ITERS {node.N_ITERS} x {cfg.DATASET.NUM_SHOTS} shots) = "
              f"{self.max_epoch} passes of {self.iters_per_epoch} batches (OPTIM.MAX_EPOCH is not used)")

    # ---- model ------------------------------------------------------------------------------------------
    def build_model(self):
        cfg, node = self.cfg, self.cfg.TRAINER.CLIPLORA
        model = self.encoder.model
        adapters = apply_lora(model, node.ENCODER, tuple(node.PARAMS), int(node.R), float(node.ALPHA),
                              float(node.DROPOUT), node.POSITION)
        texts = [str(node.TEMPLATE).format(class_text(c)) for c in self.dm.dataset.classnames]
        scale = float(node.LOGIT_SCALE) or float(self.encoder.logit_scale)
        self.model = LoRACLIP(self.encoder, adapters, self.encoder.tokenizer(texts).to(self.device), scale,
                              text_adapted=node.ENCODER in ("text", "both"))
        self.model.to(self.device)
        self.trainable_params = adapters.count()
        print(f"CLIP-LoRA: rank {node.R}, alpha {node.ALPHA}, dropout {node.DROPOUT} on {'/'.join(node.PARAMS)} of "
              f"the {node.ENCODER} encoder(s), blocks '{node.POSITION}': {self.trainable_params:,} parameters; "
              f'prompt "{node.TEMPLATE}"')
        self.optim = build_optimizer(adapters, cfg.OPTIM)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.optim, T_max=self.total_iters, eta_min=ETA_MIN)
        self.register_model(MODEL_NAME, adapters, self.optim, self.sched)
        self.autocast_on = precision_used(node.PREC, self.device) != "fp32"
        if node.PREC != "fp32" and not self.autocast_on:
            print(f'Note: TRAINER.CLIPLORA.PREC "{node.PREC}" needs CUDA; running in fp32 on the {self.device.type}.')
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_on else None

    def autocast(self):
        return autocast(self.device, precision_used(self.node.PREC, self.device))

    # ---- training -------------------------------------------------------------------------------------
    def before_train(self):
        super().before_train()
        self.resume_test_curve()

    def before_epoch(self):
        super().before_epoch()
        set_loader_epoch(self.full_loader, self.epoch)
        left = self.total_iters - self.epoch * self.iters_per_epoch
        self.train_loader_x = BudgetView(self.full_loader, left) if left < self.iters_per_epoch else self.full_loader

    def forward_backward(self, batch):
        image, label = batch["img"].to(self.device), batch["label"].to(self.device)
        iteration = self.epoch * self.iters_per_epoch + self.batch_idx
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the LoRA dropout draw of this iteration, resume-exact
            torch.manual_seed(int(self.cfg.SEED) * 1_000_003 + iteration)
            with self.autocast():
                logits = self.model(image)
                loss = F.cross_entropy(logits, label)
        scaled_update(self, loss)
        self.update_lr()  # per iteration
        return {"loss": loss.item(), "acc": 100.0 * (logits.argmax(1) == label).float().mean().item()}

    def after_epoch(self):
        self.extend_test_curve()
        super().after_epoch()

    def model_inference(self, input):
        with self.autocast():
            return self.model(input)

    # ---- records ------------------------------------------------------------------------------------
    def lora_settings(self):
        node = self.node
        return {"r": int(node.R), "alpha": float(node.ALPHA), "encoder": str(node.ENCODER),
                "params": list(node.PARAMS), "position": str(node.POSITION)}

    def prompt_identity(self):
        return {"kind": "clip_lora", **self.lora_settings()}

    def load_other_classes(self, name, checkpoint, trained):
        self._models[name].load_state_dict(checkpoint["state_dict"])  # A, B only; the prompts are this run's

    def extra_results(self):
        node = self.node
        record = {**self.lora_settings(), "scaling": float(node.ALPHA) / math.sqrt(int(node.R)),
                  "dropout": float(node.DROPOUT), "n_iters_per_shot": int(node.N_ITERS),
                  "total_iters": self.total_iters, "passes": self.max_epoch, "template": str(node.TEMPLATE),
                  "logit_scale": self.model.logit_scale, "precision": node.PREC,
                  "autocast": bool(self.autocast_on), "weight_decay": float(self.cfg.OPTIM.WEIGHT_DECAY),
                  "notes": list(NOTES)}
        return {"clip_lora": record, "trainable_params": self.trainable_params, **self.loaded_results()}
