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
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY, TrainerX, build_optimizer, compute_accuracy, load_pretrained_weights
from engine.extend import ensure_node, register_config
from engine.schedulers import build_lr_scheduler
from vr.clip import FrozenCLIP
from vr.deep_prompts import run_blocks

from .checkpoints import RunCheckpoints
from .run_record import CheckpointError
from .backbone_kind import check_backbone_kind
from .clip_plumbing import PerEpochTestCurve, autocast, check_precision, load_backbone, precision_used

MODEL_NAME = "prompt_learner"  # checkpoints: OUTPUT_DIR/prompt_learner/model.pth.tar-<epoch> (as CoOp)
PRECISIONS = ("fp16", "fp32", "amp")
POSITIONS = ("end", "middle", "front")
FIXED_TOKEN_KEYS = ("token_prefix", "token_suffix")  # buffers CoOp saved with the context


@register_config
def _coop_keys(cfg):
    node = ensure_node(cfg, "TRAINER.COOP")
    node.N_CTX = 16  # number of context vectors
    node.CSC = False  # class-specific contexts
    node.CTX_INIT = ""  # initialisation words, e.g. "a photo of a" (then n_ctx = its number of tokens)
    node.PREC = "fp16"  # fp16, fp32, amp (fp16/amp autocast on CUDA only; fp32 on the CPU)
    node.CLASS_TOKEN_POSITION = "end"  # end, middle or front


# ---- CLIP's text tower fed with embeddings ---------------------------------------------------------
class TextTower:
    """open_clip's ``encode_text`` from token *embeddings* instead of token ids.

    Not an ``nn.Module`` (like vr.clip.FrozenCLIP): CLIP's weights never enter a state_dict.
    """

    PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")

    def __init__(self, model, name=""):
        tower = model if hasattr(model, "token_embedding") else getattr(model, "text", None)
        missing = [p for p in self.PARTS if tower is None or not hasattr(tower, p)]
        if missing or getattr(tower, "cls_emb", None) is not None:
            raise ValueError(f"CoOp needs a CLIP-style text transformer (token_embedding, positional_embedding, "
                             f"transformer, ln_final, text_projection at the EOT token); the backbone {name} "
                             f"has another text tower. Use a CLIP model (e.g. ViT-B/16, RN50).")
        self.tower = tower
        self.pool_type = getattr(tower, "text_pool_type", None) or getattr(tower, "pool_type", "argmax")
        self.eos_id = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))
        if self.pool_type not in ("argmax", "eos", "first", "last"):
            raise ValueError(f'CoOp cannot pool the text features of {name} (text pool type "{self.pool_type}").')
        self.width = int(tower.ln_final.weight.shape[0])
        self.context_length = int(tower.positional_embedding.shape[0])

    def embed(self, tokens):
        """(N, L) token ids -> (N, L, width) token embeddings (no gradient: CLIP is frozen)."""
        with torch.no_grad():
            return self.tower.token_embedding(tokens).float()

    def _cast_dtype(self):
        get = getattr(self.tower.transformer, "get_cast_dtype", None)
        return get() if get is not None else self.tower.positional_embedding.dtype

    def _pool(self, x, tokens):
        rows = torch.arange(x.shape[0], device=x.device)
        if self.pool_type == "argmax":  # the EOT token has the largest id
            return x[rows, tokens.argmax(dim=-1)]
        if self.pool_type == "eos":
            return x[rows, (tokens == self.eos_id).int().argmax(dim=-1)]
        return x[:, 0] if self.pool_type == "first" else x[:, -1]

    def __call__(self, prompts, tokens, before_block=None):
        """(N, L, width) prompt embeddings and their (N, L) token ids -> (N, embed_dim) text features.

        ``before_block(j, x)``: the residual stream block j is fed (deep prompts, vr/deep_prompts.py)."""
        t = self.tower
        dtype = self._cast_dtype()
        x = prompts.to(dtype) + t.positional_embedding.to(dtype)
        x = run_blocks(t.transformer, x, attn_mask=getattr(t, "attn_mask", None), before_block=before_block)
        x = t.ln_final(x)
        x = self._pool(x, tokens)
        proj = t.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Module) else x @ proj

    @torch.no_grad()
    def check_against(self, model, tokens, name=""):
        """Fail early if this forward does not reproduce ``model.encode_text`` (another open_clip version)."""
        with torch.autocast(tokens.device.type, enabled=False):
            ours = self(self.embed(tokens), tokens).float()
            ref = model.encode_text(tokens).float()
        err = (ours - ref).abs().max().item()
        scale = ref.abs().max().item() or 1.0
        if err > 1e-4 * scale:
            raise RuntimeError(f"trainers/coop.py: the prompt text forward differs from open_clip's encode_text "
                               f"for {name} (max abs difference {err:.3g}); this open_clip version or model is "
                               f"not supported.")


def check_input_size(cfg, image_size, name):
    """INPUT.SIZE must be the backbone's input size (the loaders resize to it; CLIP's positions fit it)."""
    if int(cfg.INPUT.SIZE[0]) != image_size or int(cfg.INPUT.SIZE[1]) != image_size:
        raise ValueError(f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the {image_size}px input "
                         f"of {name}: set INPUT.SIZE ({image_size}, {image_size}).")


def count_tokens(tokenizer, text):
    """Number of BPE tokens of ``text`` (without SOS/EOT), not truncated where the tokenizer allows."""
    if hasattr(tokenizer, "encode"):
        return len(tokenizer.encode(text))
    return int(tokenizer([text])[0].argmax()) - 1  # EOT position - SOS


# ---- the prompt learner --------------------------------------------------------------------------
def _layout(position, n_ctx, name_len, length):
    """Where each output position reads from: (source index into the "ctx-first" prompt, ctx slots).

    The fixed prompt is tokenised as [SOS][ctx x n][name][.][EOS][pad]; "middle" and "front" move the
    name tokens; every other position keeps its index (the total length is the same).
    """
    src = list(range(length))
    name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
    if position == "end":
        ctx_pos = list(range(1, 1 + n_ctx))
    elif position == "middle":
        half = n_ctx // 2
        ctx_pos = list(range(1, 1 + half)) + list(range(1 + half + name_len, 1 + n_ctx + name_len))
        src[1 + half:1 + half + name_len] = name
    elif position == "front":
        ctx_pos = list(range(1 + name_len, 1 + name_len + n_ctx))
        src[1:1 + name_len] = name
    else:
        check_position(position)
    return src, ctx_pos


def check_position(position):
    if position not in POSITIONS:
        raise ValueError(f'Unknown class token position "{position}" (TRAINER.COOP.CLASS_TOKEN_POSITION). '
                         f"Use one of: {', '.join(POSITIONS)}.")


class PromptLearner(nn.Module):
    """The learnable context and the fixed token embeddings of every class prompt.

    Its state_dict holds only ``ctx``: the fixed parts are non-persistent buffers rebuilt from the class
    names (CoOp's ``token_prefix``/``token_suffix`` in an older checkpoint are ignored on load).
    """

    def __init__(self, classnames, tower: TextTower, tokenizer, n_ctx=16, ctx_init="", csc=False,
                 position="end", node="TRAINER.COOP"):
        super().__init__()
        self.node = node  # the config node whose keys the messages name (MaPLe: TRAINER.MAPLE)
        check_position(position)
        n_cls = len(classnames)
        ctx_init = str(ctx_init or "").replace("_", " ").strip()
        device = tower.tower.token_embedding.weight.device
        if ctx_init:
            n_ctx = count_tokens(tokenizer, ctx_init)
            if n_ctx < 1:
                raise ValueError(f'{node}.CTX_INIT "{ctx_init}" has no tokens.')
            init = tower.embed(tokenizer([ctx_init]).to(device))[0, 1:1 + n_ctx]
            ctx = init.unsqueeze(0).repeat(n_cls, 1, 1) if csc else init.clone()
            prefix_text = ctx_init
        else:
            n_ctx = int(n_ctx)
            shape = (n_cls, n_ctx, tower.width) if csc else (n_ctx, tower.width)
            ctx = torch.empty(shape)  # drawn on the CPU (as CoOp): the same start on any device
            nn.init.normal_(ctx, std=0.02)
            prefix_text = " ".join(["X"] * n_ctx)
        print(f'Initial context: "{prefix_text}"' + (" (one copy per class)" if csc and ctx_init else ""))
        print(f"Number of context words (tokens): {n_ctx}; "
              f"{'class-specific' if csc else 'generic'} context; class token position: {position}")
        self.ctx = nn.Parameter(ctx.float().to(device).contiguous())
        self.n_cls, self.n_ctx, self.csc, self.position = n_cls, n_ctx, bool(csc), position

        names = [c.replace("_", " ") for c in classnames]
        self.name_lens = [count_tokens(tokenizer, n) for n in names]
        prompts = [f"{prefix_text} {n}." for n in names]
        limit = tower.context_length
        for name, prompt in zip(classnames, prompts):
            if count_tokens(tokenizer, prompt) + 2 > limit:
                raise ValueError(f'The CoOp prompt of class "{name}" has {count_tokens(tokenizer, prompt) + 2} '
                                 f"tokens, more than CLIP's context length {limit}. Lower {node}.N_CTX "
                                 f"(now {n_ctx}) or shorten the class name.")
        tokens = tokenizer(prompts).to(device)
        if tokens.shape[1] != limit:
            raise ValueError(f"The tokenizer gives {tokens.shape[1]} positions, the text tower has {limit}.")
        src, ctx_pos = zip(*[_layout(position, n_ctx, k, limit) for k in self.name_lens])
        self.register_buffer("tokenized_prompts", tokens, persistent=False)
        self.register_buffer("token_embedding", tower.embed(tokens), persistent=False)  # (C, L, D)
        self.register_buffer("source_index", torch.tensor(src, device=device), persistent=False)
        self.register_buffer("ctx_index", torch.tensor(ctx_pos, device=device), persistent=False)
        self.register_load_state_dict_pre_hook(PromptLearner._before_load)

    def forward(self):
        """(C, L, D) prompt embeddings with the context vectors in place."""
        ctx = self.ctx if self.ctx.dim() == 3 else self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        d = self.token_embedding.shape[-1]
        fixed = self.token_embedding
        if self.position != "end":
            fixed = fixed.gather(1, self.source_index.unsqueeze(-1).expand(-1, -1, d))
        return fixed.scatter(1, self.ctx_index.unsqueeze(-1).expand(-1, -1, d), ctx.to(fixed.dtype))

    @staticmethod
    def _before_load(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                     error_msgs):
        for key in FIXED_TOKEN_KEYS:  # fixed token vectors of CoOp checkpoints: rebuilt from class names
            state_dict.pop(prefix + key, None)
        ctx = state_dict.get(prefix + "ctx")
        if ctx is not None and tuple(ctx.shape) != tuple(module.ctx.shape):
            raise ValueError(
                f"The checkpoint's context vectors have shape {tuple(ctx.shape)}, this CoOp model's "
                f"{tuple(module.ctx.shape)} ({module.n_cls} classes, n_ctx {module.n_ctx}, CSC {module.csc}). "
                f"Evaluate with the dataset and {module.node}.N_CTX / CSC / CTX_INIT of the training run.")


class CoOpCLIP(nn.Module):
    """Frozen CLIP + prompt learner -> class logits. Only ``prompt_learner`` is a submodule."""

    def __init__(self, encoder: FrozenCLIP, tower: TextTower, prompt_learner: PromptLearner):
        super().__init__()
        self.__dict__["encoder"] = encoder  # not a submodule: never saved, never put in train mode
        self.__dict__["tower"] = tower
        self.prompt_learner = prompt_learner
        self._cache = None

    def text_features(self):
        """(C, D) normalised text features; reused under no_grad while the context is unchanged."""
        ctx = self.prompt_learner.ctx
        reuse = not torch.is_grad_enabled()
        key = (tuple((p._version, p.data_ptr()) for p in self.prompt_learner.parameters()),
               torch.is_autocast_enabled(ctx.device.type))
        if reuse and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        feats = self.encode_prompts()
        feats = feats.float() / feats.float().norm(dim=-1, keepdim=True)
        self._cache = (key, feats.detach()) if reuse else None
        return feats

    def encode_prompts(self):
        """(C, embed_dim) unnormalised text features of the class prompts (MaPLe adds its deeper prompts)."""
        return self.tower(self.prompt_learner(), self.prompt_learner.tokenized_prompts)

    def forward(self, image):
        image_features = self.encoder.encode_image(image).float()
        return self.encoder.logit_scale * image_features @ self.text_features().t()


# ---- the trainer --------------------------------------------------------------------------------
@TRAINER_REGISTRY.register()
class CoOp(PerEpochTestCurve, RunCheckpoints, TrainerX):
    """Context Optimization (CoOp), https://arxiv.org/abs/2109.01134."""

    CLASS_TRANSFER = "learned context kept, with the evaluated class names (CoOp's own behaviour)"
    NODE = "COOP"  # the config node under TRAINER that holds PREC (MaPLe: MAPLE)

    @property
    def node(self):
        return self.cfg.TRAINER[self.NODE]

    def check_cfg(self, cfg):
        check_backbone_kind(type(self), cfg)  # a classifier for a text method: refused first
        node = cfg.TRAINER.get("COOP")
        if node is None:
            raise KeyError("Config node TRAINER.COOP is missing: build the config with engine.extend_cfg.")
        check_precision(node.PREC, PRECISIONS, "TRAINER.COOP.PREC")
        check_position(node.CLASS_TOKEN_POSITION)
        if not str(node.CTX_INIT).strip() and int(node.N_CTX) < 1:
            raise ValueError(f"TRAINER.COOP.N_CTX must be at least 1 (got {node.N_CTX}), or give CTX_INIT words.")

    def build_data_loader(self):
        """CLIP first: missing weights fail before the dataset is read."""
        self.backbone = load_backbone(self.cfg, self.device, self)
        self.check_backbone(self.backbone)
        super().build_data_loader()

    def check_backbone(self, backbone):
        """Backbone facts a variant needs, checked before the dataset is read (MaPLe: a ViT image tower)."""

    def build_model(self):
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

    def extend_model(self, model):
        """A variant's additions to CoOp's model before it is registered (CoCoOp: the meta-net)."""
        return model

    def register_learner(self, learner):
        """The learned module's optional initial weights, optimiser, per-epoch schedule (as CoOp), checkpoint
        name and precision: the end of every CoOp-family build_model."""
        cfg = self.cfg
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(learner, cfg.MODEL.INIT_WEIGHTS)
        self.optim = build_optimizer(learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)  # stepped once per epoch, as CoOp
        self.register_model(MODEL_NAME, learner, self.optim, self.sched)
        self.setup_precision()

    def setup_precision(self):
        """Autocast and loss scaling of TRAINER.<NODE>.PREC (CUDA only; fp32 elsewhere, with a note)."""
        prec = self.node.PREC
        self.autocast_on = precision_used(prec, self.device) != "fp32"
        if prec != "fp32" and not self.autocast_on:
            print(f'Note: TRAINER.{self.NODE}.PREC "{prec}" needs CUDA; running in fp32 on the {self.device.type}.')
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_on and prec == "amp" else None

    def autocast(self, training):
        """fp16 autocast for "fp16" (training and test) and "amp" (training only), on CUDA."""
        precision = precision_used(self.node.PREC, self.device)
        if precision == "amp" and not training:  # amp tests in fp32, as CoOp
            precision = "fp32"
        return autocast(self.device, precision)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast(training=True):
            output = self.model(image)
            loss = self.compute_loss(output, label)
        if self.scaler is not None:
            self.detect_anomaly(loss)
            self.optim.zero_grad()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.model_backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def compute_loss(self, output, label):
        """The training loss of one batch (a hook for CoOp's variants, e.g. KgCoOp's regulariser)."""
        return F.cross_entropy(output, label)

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def model_inference(self, input):
        with self.autocast(training=False):
            return self.model(input)

    # ---- the per-epoch test curve (TEST.PER_EPOCH; never the headline number) ------------------
    def before_train(self):
        super().before_train()
        self.resume_test_curve()

    def after_epoch(self):
        self.extend_test_curve()
        super().after_epoch()

    def extra_results(self):
        """CoOp's settings for results.json (train.py adds them under "coop")."""
        node, learner = self.cfg.TRAINER.COOP, self.model.prompt_learner
        return {"coop": {"n_ctx": learner.n_ctx, "csc": learner.csc, "ctx_init": node.CTX_INIT,
                         "class_token_position": learner.position, "precision": node.PREC,
                         "autocast": bool(self.autocast_on), "trainable_params": learner.ctx.numel()},
                **self.loaded_results()}

    # ---- checkpoints: identity and other class sets (trainers/checkpoints.py) --------------------
    def prompt_identity(self):
        node, learner = self.cfg.TRAINER.COOP, self.model.prompt_learner
        return {"kind": "coop_context", "n_ctx": int(learner.n_ctx), "csc": bool(learner.csc),
                "ctx_init": str(node.CTX_INIT), "class_token_position": learner.position}

    def check_other_classes(self, trained, evaluated):
        super().check_other_classes(trained, evaluated)
        if self.model.prompt_learner.csc:
            raise CheckpointError("CoOp with class-specific contexts (TRAINER.COOP.CSC True) learned one context "
                                  "per training class, so it cannot score another class set. Evaluate it on its "
                                  "training classes, or train with CSC False.")

    def load_other_classes(self, name, checkpoint, trained):
        self._models[name].load_state_dict(checkpoint["state_dict"])  # the context only; names are this run's
