"""Independent deep prompts on a frozen CLIP: the shared part of IVLP, VPT (deep) and PromptSRC.

The three come from one code base (muzairkhattak/multimodal-prompt-learning and PromptSRC: the "IVLP"
blocks of their clip/model.py) and differ only in which tower is prompted and in the loss:

* text (depth J_t >= 1): CoOp's prompt "CTX_INIT {name}." with its first n_t tokens learned (the
  embeddings of CTX_INIT's first n_t tokens at the start; N(0, 0.02) with an "X .. X" prompt when
  n_t exceeds CTX_INIT's tokens), and before text block j = 1 .. J_t - 1 positions 1 .. n_t are
  overwritten with a learned n_t x width prompt (N(0, 0.02));
* image (depth J_v >= 1): n_v learned tokens (N(0, 0.02)) appended after the positional embedding, and
  the last n_v tokens overwritten before image block j = 1 .. J_v - 1; J_v = 0: no image prompt.
  Nothing couples the two towers (MaPLe's difference).

The forward is vr/deep_prompts.py (``replacing``, ``encode_image_deep``); the trainer is CoOp's
(trainers/coop.py: schedule, precision, checkpoints under prompt_learner/, eval-only, base-to-new). All
learned tensors are parameters of CoOp's prompt learner, so a checkpoint holds them only.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import set_random_seed
from engine.extend import ensure_node, trainer_node
from vr.clip import FrozenCLIP
from vr.deep_prompts import check_image_forward, encode_image_deep, replacing

from .clip_plumbing import check_precision
from .coop import PRECISIONS, CoOp
from .coop_model import CoOpCLIP, PromptLearner, TextTower, count_tokens
from .features import count_trainable
from .maple import TEXT_START, learn_first_tokens, prompted_towers

PROMPT_STD = 0.02  # every randomly started prompt (the official code's nn.init.normal_(std=0.02))
TEXT_KEYS = ("N_CTX_TEXT", "PROMPT_DEPTH_TEXT")


def add_prompt_keys(cfg, node_name, n_text, n_vision, depth_text, depth_vision, text=True):
    """The official node's keys and defaults (VPT has no text keys)."""
    node = ensure_node(cfg, f"TRAINER.{node_name}")
    node.N_CTX_VISION = n_vision  # image prompt tokens per prompted block
    if text:
        node.N_CTX_TEXT = n_text  # text prompt tokens per prompted block
    node.CTX_INIT = "a photo of a"  # the prompt words; the first N_CTX_TEXT tokens start the layer-0 text prompt
    node.PREC = "fp16"  # fp16, fp32, amp (fp16/amp autocast on CUDA only; fp32 on the CPU)
    node.PROMPT_DEPTH_VISION = depth_vision  # J_v: 0 none, 1 the input only, J: the first J blocks
    if text:
        node.PROMPT_DEPTH_TEXT = depth_text  # J_t (at least 1 where the text is learned)
    return node


def random_prompts(count, n, width, device):
    """``count`` parameters of n x width drawn N(0, 0.02) on the CPU (the same start on any device)."""
    out = []
    for _ in range(count):
        p = torch.empty(n, width)
        nn.init.normal_(p, std=PROMPT_STD)
        out.append(nn.Parameter(p.to(device)))
    return out


def add_vision_prompts(learner, n, depth, width, device):
    """``vision_ctx`` (the input prompt; None at depth 0) and ``vision_prompts`` (blocks 1 .. J_v - 1)."""
    first = random_prompts(1, n, width, device)[0] if depth >= 1 else None
    learner.vision_ctx = first
    learner.vision_prompts = nn.ParameterList(random_prompts(max(depth - 1, 0), n, width, device))


def text_learner(classnames, tower, tokenizer, n_ctx, ctx_init, node_key):
    """CoOp's prompt learner with n_ctx learned tokens: CTX_INIT's first n_ctx when it has that many,
    else a random "X .. X" context (the official ``n_ctx <= 4`` rule, 4 = the tokens of "a photo of a")."""
    ctx_init = str(ctx_init or "").replace("_", " ").strip()
    if ctx_init and n_ctx <= count_tokens(tokenizer, ctx_init):
        learner = PromptLearner(classnames, tower, tokenizer, ctx_init=ctx_init, node=node_key)
        if learner.n_ctx != n_ctx:
            learn_first_tokens(learner, n_ctx)
            print(f"the first {n_ctx} of those tokens are learned; the rest stay fixed words")
        return learner
    return PromptLearner(classnames, tower, tokenizer, n_ctx=n_ctx, node=node_key)


def deep_prompt_count(n_text, depth_text, n_vision, depth_vision, text_width=512, vision_width=768):
    """Learned numbers (ViT-B/16 widths by default): J_t * n_t * d_t + J_v * n_v * d_v."""
    return depth_text * n_text * text_width + depth_vision * n_vision * vision_width


class DeepPromptCLIP(CoOpCLIP):
    """Frozen CLIP with independent deep prompts in the text and image towers -> class logits. The
    normalised features of the last forward with gradients are kept for a loss (PromptSRC)."""

    last_features = None

    def encode_prompts(self):
        learner = self.prompt_learner
        return self.tower(learner(), learner.tokenized_prompts,
                          before_block=replacing(learner.text_prompts, TEXT_START))

    def image_features(self, image):
        learner = self.prompt_learner
        feats = encode_image_deep(self.encoder.model.visual, image, learner.vision_ctx, learner.vision_prompts)
        return F.normalize(feats.float(), dim=-1)

    def forward(self, image):
        image_features, text_features = self.image_features(image), self.text_features()
        self.last_features = (image_features, text_features) if torch.is_grad_enabled() else None
        return self.encoder.logit_scale * image_features @ text_features.t()


class DeepPromptTrainer(CoOp):
    """CoOp's trainer with the independent deep prompts of TRAINER.<NODE> (a subclass sets NODE, LEARNS_TEXT)."""

    LEARNS_TEXT = True
    CLASS_TRANSFER = ("learned prompts kept (none is class-specific), with the evaluated class names "
                      "(the official code's behaviour)")
    NOTES = ()  # the policies where this implementation differs from the official code (results.json)

    def setting(self, key, default=0):
        return int(self.node.get(key, default))

    def check_cfg(self, cfg):
        key = f"TRAINER.{self.NODE}"
        node = trainer_node(cfg, self.NODE)
        check_precision(node.PREC, PRECISIONS, f"{key}.PREC")
        for k in ("N_CTX_VISION", "PROMPT_DEPTH_VISION") + (TEXT_KEYS if self.LEARNS_TEXT else ()):
            if int(node[k]) < 0:
                raise ValueError(f"{key}.{k} must be at least 0 (got {node[k]}).")
        if self.LEARNS_TEXT and (int(node.N_CTX_TEXT) < 1 or int(node.PROMPT_DEPTH_TEXT) < 1):
            raise ValueError(f"{key}.N_CTX_TEXT and PROMPT_DEPTH_TEXT must be at least 1 (got {node.N_CTX_TEXT}, "
                             f"{node.PROMPT_DEPTH_TEXT}): {self.NODE} learns text prompts (for image prompts "
                             f"only use the VPT trainer).")
        if not self.LEARNS_TEXT and (int(node.N_CTX_VISION) < 1 or int(node.PROMPT_DEPTH_VISION) < 1):
            raise ValueError(f"{key}.N_CTX_VISION and PROMPT_DEPTH_VISION must be at least 1 (got "
                             f"{node.N_CTX_VISION}, {node.PROMPT_DEPTH_VISION}): {self.NODE} learns image prompts "
                             f"only.")

    def check_backbone(self, backbone):
        """Before the dataset is read: a transformer image tower, CoOp's text tower, depths within the blocks."""
        name, key, trainer = backbone.name, f"TRAINER.{self.NODE}", self.cfg.TRAINER.NAME
        _, image_blocks, text_blocks = prompted_towers(
            self.cfg, backbone, f"{trainer} prompts CLIP's image transformer",
            f"{trainer} encodes class prompts as CoOp does",
            f"the official protocol: ViT-B/16, configs/trainers/{trainer}/vit_b16.yaml")
        blocks = {"VISION": image_blocks, "TEXT": text_blocks}
        for tower_name, count in blocks.items():
            depth = self.setting(f"PROMPT_DEPTH_{tower_name}")
            if depth > count:
                raise ValueError(f"{key}.PROMPT_DEPTH_{tower_name} {depth} exceeds the {count} "
                                 f"{tower_name.lower()} blocks of {name}: set it to at most {count}.")

    def build_text(self, encoder, tower, learner_node):
        """The prompt learner (IVLP: learned text prompts; VPT overrides: fixed text)."""
        learner = text_learner(self.dm.dataset.classnames, tower, encoder.tokenizer, self.setting("N_CTX_TEXT"),
                               self.node.CTX_INIT, learner_node)
        tower.check_against(encoder.model, learner.tokenized_prompts[:8], encoder.name)
        depth = self.setting("PROMPT_DEPTH_TEXT")
        learner.text_prompts = nn.ParameterList(random_prompts(depth - 1, learner.n_ctx, tower.width,
                                                               learner.ctx.device))
        return learner

    def wrap_model(self, encoder, tower, learner):
        """The nn.Module that maps images to logits (a subclass's model class)."""
        return DeepPromptCLIP(encoder, tower, learner)

    def build_model(self):
        backbone = self.backbone
        encoder = FrozenCLIP(backbone)
        tower = TextTower(backbone.model, encoder.name)
        print(f"Building {self.cfg.TRAINER.NAME}'s CLIP")
        learner = self.build_text(encoder, tower, f"TRAINER.{self.NODE}")
        check_image_forward(backbone.model, encoder.image_size, encoder.name)
        vision_width = int(backbone.model.visual.class_embedding.shape[-1])
        add_vision_prompts(learner, self.setting("N_CTX_VISION"), self.setting("PROMPT_DEPTH_VISION"), vision_width,
                           next(learner.buffers()).device)
        self.model = self.wrap_model(encoder, tower, learner).to(self.device)
        self.trainable_params = count_trainable(learner)
        print(f"CLIP is frozen; trained: {self.prompt_summary()} ({self.trainable_params:,} parameters)")
        self.register_learner(learner)  # stepped once per epoch, as the official code

    def before_epoch(self):
        """The global RNGs (CoOp's loader draws its order and augmentations from them) seeded from (SEED,
        epoch), not left as this process's history: a resumed run sees an uninterrupted run's batches."""
        super().before_epoch()
        if int(self.cfg.SEED) >= 0:
            set_random_seed(int(self.cfg.SEED) + 1000003 * int(self.epoch))

    def prompt_summary(self):
        parts = [f"{self.setting(f'N_CTX_{t}')} tokens in the first {self.setting(f'PROMPT_DEPTH_{t}')} "
                 f"{t.lower()} blocks" for t in (("TEXT",) if self.LEARNS_TEXT else ()) + ("VISION",)]
        return " and ".join(parts)

    def settings(self):
        """The node's values as run (results.json, the checkpoint's prompt identity)."""
        node = self.node
        keys = ("N_CTX_VISION", "PROMPT_DEPTH_VISION") + (TEXT_KEYS if self.LEARNS_TEXT else ())
        return {"ctx_init": str(node.CTX_INIT), **{k.lower(): int(node[k]) for k in keys}}

    def extra_results(self):
        record = {**self.settings(), "precision": self.node.PREC, "autocast": bool(self.autocast_on),
                  "deviations": list(self.NOTES)}
        return {self.NODE.lower(): record, "trainable_params": self.trainable_params, **self.loaded_results()}

    def prompt_identity(self):
        return {"kind": self.NODE.lower(), **self.settings()}
