"""Low-rank adapters (LoRA) on the attention projections of open_clip's transformers, as CLIP-LoRA (Zanella &
Ben Ayed, CVPRW 2024) puts them: for each chosen projection W (q, k, v of the fused ``in_proj_weight``, or the
output projection o), dW = s * B A with A (r x d_in), B (d_out x r), s = alpha / sqrt(r); A starts as
nn.Linear's default (Kaiming-uniform, a = sqrt(5)), B at zero, so dW = 0 at the start. Dropout acts on the
input of the low-rank branch only; the frozen path sees the clean input.

``LoRAAttention`` replaces an ``nn.MultiheadAttention`` inside a residual block and keeps it as ``base``:
- while a branch's dropout is active (train mode, p > 0): q/k/v = frozen projection of x + s B A drop(x),
  attention by scaled_dot_product_attention, then the (adapted) output projection;
- otherwise (eval, or p = 0): the base module's own forward with the merged weights W + dW, so with B = 0
  the output is bit for bit the frozen model's (CLIP-LoRA merges in eval too).
``apply_lora`` wraps the chosen blocks of the chosen towers and returns ``LoRAAdapters``: a module that holds
every A and B (and nothing of CLIP), the one to optimise and checkpoint.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

PROJECTIONS = ("q", "k", "v", "o")
ENCODERS = ("text", "vision", "both")
# CLIP-LoRA's block positions (loralib/utils.py) for 12-block towers; "all" and "half-*" fit any depth.
POSITIONS_12 = {"bottom": [0, 1, 2, 3], "mid": [4, 5, 6, 7], "up": [8, 9, 10, 11], "top3": [9, 10, 11]}
POSITIONS = ("all", "half-up", "half-bottom", *POSITIONS_12)


class LowRankUpdate(nn.Module):
    """dW = scaling * B A for one (d_out x d_in) matrix; ``forward(x)`` is the branch's output on drop(x)."""

    def __init__(self, d_in, d_out, r, alpha, dropout, device=None):
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(r, d_in, device=device))
        self.lora_B = nn.Parameter(torch.zeros(d_out, r, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = float(alpha) / math.sqrt(r)
        self.dropout = nn.Dropout(dropout)

    @property
    def active_dropout(self):
        return self.training and self.dropout.p > 0

    def delta(self):
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x):
        return self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)


class LoRAAttention(nn.Module):
    """A frozen ``nn.MultiheadAttention`` (self-attention, fused in-projection) plus low-rank updates."""

    def __init__(self, base: nn.MultiheadAttention, updates: dict):
        super().__init__()
        if not base._qkv_same_embed_dim or base.in_proj_weight is None:
            raise ValueError("LoRA here needs an attention with a fused in_proj_weight (open_clip's CLIP blocks).")
        self.base = base
        self.updates = nn.ModuleDict(updates)

    def merged_weights(self):
        """{name: W + dW} of the adapted base parameters (the q/k/v rows of in_proj_weight, out_proj.weight)."""
        base, d = self.base, self.base.embed_dim
        out = {}
        if any(p in self.updates for p in "qkv"):
            rows = [self.updates[p].delta() if p in self.updates else base.in_proj_weight.new_zeros(d, d)
                    for p in "qkv"]
            out["in_proj_weight"] = base.in_proj_weight + torch.cat(rows).to(base.in_proj_weight.dtype)
        if "o" in self.updates:
            out["out_proj.weight"] = base.out_proj.weight + self.updates["o"].delta().to(base.out_proj.weight.dtype)
        return out

    def forward(self, query, key, value, need_weights=False, attn_mask=None, key_padding_mask=None, **kwargs):
        if not any(u.active_dropout for u in self.updates.values()):
            return functional_call(self.base, self.merged_weights(), (query, key, value),
                                   dict(need_weights=need_weights, attn_mask=attn_mask,
                                        key_padding_mask=key_padding_mask, **kwargs))
        if need_weights or key_padding_mask is not None or kwargs.get("is_causal"):
            raise NotImplementedError("LoRAAttention's training path supports CLIP's self-attention only "
                                      "(no attention weights, key padding mask or is_causal).")
        return self._branch_forward(query, key, value, attn_mask), None

    def _branch_forward(self, query, key, value, attn_mask):
        base = self.base
        if not base.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        n, length, d = query.shape
        heads = base.num_heads
        weights = base.in_proj_weight.chunk(3)
        biases = base.in_proj_bias.chunk(3) if base.in_proj_bias is not None else (None,) * 3
        proj = []
        for name, x, w, b in zip("qkv", (query, key, value), weights, biases, strict=False):
            y = F.linear(x, w, b)
            if name in self.updates:
                y = y + self.updates[name](x)
            proj.append(y.view(x.shape[0], x.shape[1], heads, d // heads).transpose(1, 2))
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.to(proj[0].dtype)
        out = F.scaled_dot_product_attention(*proj, attn_mask=attn_mask,
                                             dropout_p=base.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(n, length, d)
        result = F.linear(out, base.out_proj.weight, base.out_proj.bias)
        if "o" in self.updates:
            result = result + self.updates["o"](out)
        return result if base.batch_first else result.transpose(0, 1)


class LoRAAdapters(nn.Module):
    """Every low-rank update, as ``<tower>.<block>.<projection>.lora_A / lora_B``: what is learned and saved."""

    def __init__(self):
        super().__init__()
        self.text = nn.ModuleDict()
        self.vision = nn.ModuleDict()

    def count(self):
        return sum(p.numel() for p in self.parameters())


def tower_blocks(model, tower):
    """The residual blocks of CLIP's ``tower`` ("text" or "vision"), or None when it is not a transformer."""
    owner = model.visual if tower == "vision" else (model if hasattr(model, "transformer") else
                                                     getattr(model, "text", None))
    transformer = getattr(owner, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    if blocks is None or not all(isinstance(getattr(b, "attn", None), (nn.MultiheadAttention, LoRAAttention))
                                 for b in blocks):
        return None
    return blocks


def block_indices(position, depth):
    """Indices of the adapted blocks of a ``depth``-block tower (CLIP-LoRA's position names)."""
    if position == "all":
        return list(range(depth))
    if position == "half-up":
        return list(range(depth // 2, depth))
    if position == "half-bottom":
        return list(range(depth // 2))
    if position in POSITIONS_12:
        if depth != 12:
            raise ValueError(f'LoRA position "{position}" is defined for 12-block towers; this one has {depth}. '
                             f"Use all, half-up or half-bottom.")
        return list(POSITIONS_12[position])
    raise ValueError(f'Unknown LoRA position "{position}". Use one of: {", ".join(POSITIONS)}.')


def towers_of(encoders):
    if encoders not in ENCODERS:
        raise ValueError(f'Unknown LoRA encoder choice "{encoders}". Use one of: {", ".join(ENCODERS)}.')
    return ("text", "vision") if encoders == "both" else (encoders,)


def apply_lora(model, encoders="both", projections=("q", "k", "v"), r=2, alpha=1.0, dropout=0.25,
               position="all"):
    """Wrap the attention of the chosen blocks in ``model`` (in place); returns their ``LoRAAdapters``."""
    unknown = [p for p in projections if p not in PROJECTIONS]
    if unknown or not projections:
        raise ValueError(f"LoRA projections {list(projections)}: choose among {', '.join(PROJECTIONS)}.")
    adapters = LoRAAdapters()
    for tower in towers_of(encoders):
        blocks = tower_blocks(model, tower)
        if blocks is None:
            raise ValueError(f"the {tower} encoder is not a transformer with nn.MultiheadAttention blocks")
        for i in block_indices(position, len(blocks)):
            attn = blocks[i].attn
            if isinstance(attn, LoRAAttention):
                raise ValueError(f"block {i} of the {tower} encoder already has LoRA")
            d, device = attn.embed_dim, attn.in_proj_weight.device
            updates = {p: LowRankUpdate(d, d, int(r), alpha, dropout, device=device) for p in PROJECTIONS
                       if p in projections}
            blocks[i].attn = LoRAAttention(attn, updates).train(attn.training)  # a frozen CLIP stays in eval
            getattr(adapters, tower)[str(i)] = blocks[i].attn.updates
    return adapters


def lora_parameter_count(widths_and_depths, projections=3, r=2):
    """The formula: 2 r d per adapted d x d matrix, summed over towers given as (width d, blocks)."""
    return sum(2 * r * d * projections * depth for d, depth in widths_and_depths)
