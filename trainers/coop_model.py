"""CoOp's model: CLIP's text tower fed with token embeddings, the prompt learner (the learnable context
and each class prompt's fixed tokens), and frozen CLIP + prompt learner -> class logits.

The trainer, its config node TRAINER.COOP and the deliberate differences from CoOp: trainers/coop.py.
"""
import torch
import torch.nn as nn

from vr.clip import FrozenCLIP
from vr.deep_prompts import run_blocks

POSITIONS = ("end", "middle", "front")
FIXED_TOKEN_KEYS = ("token_prefix", "token_suffix")  # buffers CoOp saved with the context


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
            raise RuntimeError(f"trainers/coop_model.py: the prompt text forward differs from open_clip's encode_text "
                               f"for {name} (max abs difference {err:.3g}); this open_clip version or model is "
                               f"not supported.")


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
        for name, prompt in zip(classnames, prompts, strict=False):
            if count_tokens(tokenizer, prompt) + 2 > limit:
                raise ValueError(f'The CoOp prompt of class "{name}" has {count_tokens(tokenizer, prompt) + 2} '
                                 f"tokens, more than CLIP's context length {limit}. Lower {node}.N_CTX "
                                 f"(now {n_ctx}) or shorten the class name.")
        tokens = tokenizer(prompts).to(device)
        if tokens.shape[1] != limit:
            raise ValueError(f"The tokenizer gives {tokens.shape[1]} positions, the text tower has {limit}.")
        src, ctx_pos = zip(*[_layout(position, n_ctx, k, limit) for k in self.name_lens], strict=False)
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
