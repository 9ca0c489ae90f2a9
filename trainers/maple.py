"""MaPLe: multi-modal prompt learning (Khattak et al., "MaPLe: Multi-modal Prompt Learning", CVPR 2023,
arXiv 2210.03117), coupled vision-language deep prompts on a frozen CLIP, trained in CoOp's protocol.

Learned: text prompts P_0 .. P_{J-1} (n x text width each) and couplings F_0 .. F_{J-1} = Linear(text width
-> vision width, bias); the vision prompts are F_j(P_j), so vision is conditioned on language. J =
PROMPT_DEPTH (9), n = N_CTX (2). Text: the prompt "a photo of a {name}." keeps its words and P_0 replaces
its first n ("a photo"; P_0 starts as their embeddings), and before text block j = 1 .. J-1 positions
1 .. n are overwritten with P_j (N(0, 0.02) at the start). Image (ViT only): F_0(P_0) is appended as n
tokens after the positional embedding, and the last n tokens are overwritten with F_j(P_j) before image
block j = 1 .. J-1 (vr/deep_prompts.py). Blocks from J on are untouched. Logits s * cos, cross-entropy.
Trained parameters at ViT-B/16 (512 -> 768): 9 * 2 * 512 + 9 * (512 * 768 + 768) = 3,555,072.

Built on trainers/coop.py, coop_model.py (prompt learner, text forward, schedule, precision, checkpoints, eval-only
and base-to-new): the prompts and couplings are submodules of CoOp's prompt learner under MaPLe's names
(ctx, proj, compound_prompts_text, compound_prompt_projections), so a checkpoint holds them only (MaPLe's
fixed token vectors are dropped on load, as CoOp's). Deviations: CLIP and the prompts stay fp32 (open_clip
weights); PREC fp16 = CUDA fp16 autocast for training and test (MaPLe casts its prompts to fp16 always,
so its fp32/amp are effectively unsupported); N_CTX may not exceed CTX_INIT's tokens (MaPLe hard-codes
the check to 4). New classes: yes, with the evaluated class names (nothing learned is class-specific).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config, trainer_node
from vr.clip import FrozenCLIP
from vr.deep_prompts import check_image_forward, deep_prompt_refusal, encode_image_deep, replacing, transformer_blocks

from .clip_plumbing import check_precision
from .coop import PRECISIONS, CoOp, check_input_size
from .coop_model import CoOpCLIP, PromptLearner, TextTower, count_tokens
from .features import count_trainable

TEXT_START = 1  # the learned text tokens follow SOS


def prompted_towers(cfg, backbone, image_claim, text_claim, protocol):
    """Before the dataset is read, for a trainer that prompts CLIP's transformers: a transformer image tower,
    CoOp's text tower, the backbone's input size. -> (the TextTower, image blocks, text blocks)."""
    name = backbone.name
    reason = deep_prompt_refusal(backbone.model.visual)
    if reason:
        raise ValueError(f"{image_claim}, and the backbone {name}: {reason}. Use a ViT backbone ({protocol}).")
    try:
        tower = TextTower(backbone.model, name)
    except ValueError as err:
        raise ValueError(f"{text_claim}: {err}") from err
    check_input_size(cfg, int(backbone.image_size), name)
    return (tower, len(transformer_blocks(backbone.model.visual.transformer)),
            len(transformer_blocks(tower.tower.transformer)))


@register_config
def _maple_keys(cfg):
    node = ensure_node(cfg, "TRAINER.MAPLE")
    node.N_CTX = 2  # learned tokens per layer (text; their projections in the image tower)
    node.CTX_INIT = "a photo of a"  # the prompt words; P_0 starts as the embeddings of their first N_CTX tokens
    node.PREC = "fp16"  # fp16, fp32, amp (fp16/amp autocast on CUDA only; fp32 on the CPU)
    node.PROMPT_DEPTH = 9  # J: prompts in the first J blocks of both towers (1: the input layer only)


def coupling(text_width, vision_width):
    """F_j: a language prompt token -> a vision prompt token (PyTorch's default Linear init, as MaPLe)."""
    return nn.Linear(text_width, vision_width)


def add_deep_prompts(learner, depth, text_width, vision_width):
    """P_1 .. P_{J-1} and F_0 .. F_{J-1} as submodules of CoOp's prompt learner (whose ctx is P_0)."""
    n, device = learner.ctx.shape[0], learner.ctx.device
    deeper = []
    for _ in range(depth - 1):
        p = torch.empty(n, text_width)  # drawn on the CPU (as CoOp's context): the same start on any device
        nn.init.normal_(p, std=0.02)
        deeper.append(nn.Parameter(p.to(device)))
    learner.compound_prompts_text = nn.ParameterList(deeper)
    learner.proj = coupling(text_width, vision_width).to(device)
    first_deeper = coupling(text_width, vision_width).to(device)  # MaPLe clones one layer: F_1 .. F_{J-1} start equal
    learner.compound_prompt_projections = nn.ModuleList([copy.deepcopy(first_deeper) for _ in range(depth - 1)])


def learn_first_tokens(learner, n):
    """Learn only the first ``n`` of the context tokens; the others stay fixed words of every class prompt
    (MaPLe: of "a photo of a", "a photo" is learned and "of a {name}." stays)."""
    if n > learner.n_ctx:
        raise ValueError(f"TRAINER.MAPLE.N_CTX {n} exceeds the {learner.n_ctx} tokens of TRAINER.MAPLE.CTX_INIT.")
    learner.ctx = nn.Parameter(learner.ctx.detach()[:n].clone())
    learner.ctx_index = learner.ctx_index[:, :n].contiguous()
    learner.n_ctx = n


class MaPLeCLIP(CoOpCLIP):
    """Frozen CLIP with MaPLe's coupled prompts in both towers -> class logits."""

    def encode_prompts(self):
        learner = self.prompt_learner
        return self.tower(learner(), learner.tokenized_prompts,
                          before_block=replacing(learner.compound_prompts_text, TEXT_START))

    def vision_prompts(self):
        """F_0(P_0) and [F_j(P_j) for j = 1 .. J-1]: the image tower's prompts, projected from the text's."""
        learner = self.prompt_learner
        deeper = [f(p) for f, p in zip(learner.compound_prompt_projections, learner.compound_prompts_text,
                                       strict=False)]
        return learner.proj(learner.ctx), deeper

    def forward(self, image):
        first, deeper = self.vision_prompts()
        visual = self.encoder.model.visual
        image_features = F.normalize(encode_image_deep(visual, image, first, deeper).float(), dim=-1)
        return self.encoder.logit_scale * image_features @ self.text_features().t()


@TRAINER_REGISTRY.register()
class MaPLe(CoOp):
    """Multi-modal Prompt Learning (MaPLe), https://arxiv.org/abs/2210.03117."""

    NODE = "MAPLE"
    CLASS_TRANSFER = ("learned prompts and couplings kept (none is class-specific), with the evaluated class "
                      "names (MaPLe's own behaviour)")

    def check_cfg(self, cfg):
        node = trainer_node(cfg, "MAPLE")
        check_precision(node.PREC, PRECISIONS, "TRAINER.MAPLE.PREC")
        if int(node.N_CTX) < 1:
            raise ValueError(f"TRAINER.MAPLE.N_CTX must be at least 1 (got {node.N_CTX}); MaPLe's configs use 2.")
        if int(node.PROMPT_DEPTH) < 1:
            raise ValueError(f"TRAINER.MAPLE.PROMPT_DEPTH must be at least 1 (got {node.PROMPT_DEPTH}; 1 prompts "
                             f"the input layer only); MaPLe's configs use 9.")

    def check_backbone(self, backbone):
        """Before the dataset is read: a transformer in both towers, deep enough for PROMPT_DEPTH, and
        N_CTX within CTX_INIT's tokens."""
        node, name = self.node, backbone.name
        _, image_blocks, text_blocks = prompted_towers(
            self.cfg, backbone, "MaPLe prompts the transformers of both CLIP encoders",
            "MaPLe prompts CLIP's text transformer as CoOp does",
            "MaPLe's protocol: ViT-B/16, configs/trainers/MaPLe/vit_b16.yaml")
        depth = int(node.PROMPT_DEPTH)
        layers = {"text": text_blocks, "image": image_blocks}
        if depth > min(layers.values()):
            raise ValueError(f"TRAINER.MAPLE.PROMPT_DEPTH {depth} exceeds the blocks of {name} ({layers['text']} "
                             f"text, {layers['image']} image): set it to at most {min(layers.values())}.")
        ctx_init = str(node.CTX_INIT or "").replace("_", " ").strip()
        init_tokens = count_tokens(backbone.tokenizer, ctx_init) if ctx_init else 0
        if ctx_init and int(node.N_CTX) > init_tokens:
            raise ValueError(f'TRAINER.MAPLE.N_CTX {node.N_CTX} exceeds the {init_tokens} tokens of '
                             f'TRAINER.MAPLE.CTX_INIT "{ctx_init}": lower N_CTX, or set CTX_INIT "" (random context).')

    def build_model(self):
        node = self.node
        backbone = self.backbone
        encoder = FrozenCLIP(backbone)
        tower = TextTower(backbone.model, encoder.name)
        print("Building MaPLe's CLIP")
        learner = PromptLearner(self.dm.dataset.classnames, tower, backbone.tokenizer, n_ctx=node.N_CTX,
                                ctx_init=node.CTX_INIT, node="TRAINER.MAPLE")
        if learner.n_ctx != int(node.N_CTX):
            learn_first_tokens(learner, int(node.N_CTX))
            print(f"MaPLe: the first {learner.n_ctx} of those tokens are learned; the rest stay fixed words")
        tower.check_against(backbone.model, learner.tokenized_prompts[:8], encoder.name)
        check_image_forward(backbone.model, encoder.image_size, encoder.name)
        depth = int(node.PROMPT_DEPTH)
        vision_width = int(backbone.model.visual.class_embedding.shape[-1])
        add_deep_prompts(learner, depth, tower.width, vision_width)
        self.model = MaPLeCLIP(encoder, tower, learner).to(self.device)
        self.trainable_params = count_trainable(learner)
        print(f"CLIP is frozen; trained: {learner.n_ctx} prompt tokens in the first {depth} blocks of the text "
              f"tower and {depth} couplings {tower.width} -> {vision_width} to the image tower "
              f"({self.trainable_params:,} parameters)")
        self.register_learner(learner)  # stepped once per epoch, as CoOp and MaPLe

    def extra_results(self):
        node, learner = self.node, self.model.prompt_learner
        return {"maple": {"n_ctx": int(learner.n_ctx), "ctx_init": str(node.CTX_INIT),
                          "prompt_depth": int(node.PROMPT_DEPTH), "precision": node.PREC,
                          "autocast": bool(self.autocast_on), "coupling": [int(learner.proj.in_features),
                                                                           int(learner.proj.out_features)]},
                "trainable_params": self.trainable_params, **self.loaded_results()}

    def prompt_identity(self):
        node, learner = self.node, self.model.prompt_learner
        return {"kind": "maple", "n_ctx": int(learner.n_ctx), "ctx_init": str(node.CTX_INIT),
                "prompt_depth": int(node.PROMPT_DEPTH)}
