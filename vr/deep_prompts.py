"""Deep prompts: open_clip's text and image transformers with prompt tokens replaced before chosen blocks.

Lives in vr/ beside vr/clip.py (the other place that runs open_clip's image tower in parts) because it is a
CLIP-level part, not a trainer: any deep-prompt method (MaPLe; IVLP / VPT-deep style variants) composes it,
and CoOp's ``TextTower`` runs its blocks through ``run_blocks``, so there is one text forward.

* ``run_blocks``: open_clip's ``Transformer.forward`` (the same blocks and ``attn_mask``; (N, L, D) in and
  out, transposed around each block when the transformer is not ``batch_first``), with a ``before_block(j, x)``
  hook that may return a new residual stream for block j.
* ``replacing``: that hook for deep prompts: before block j = 1 .. len(prompts), the n token positions from
  ``start`` are overwritten with ``prompts[j - 1]`` (the previous block's outputs there are discarded);
  blocks 0 and > len(prompts) get the stream as it is.
* ``encode_image_deep``: open_clip's ``VisionTransformer.forward`` (conv1, class token, positional
  embedding, patch dropout, ln_pre, blocks, pooling, proj) with n prompt tokens appended at the END after
  the positional embedding (no positional embedding of their own) and before ln_pre, replaced before the
  deeper blocks, and removed before pooling (so "avg" pooling and attention pools see the image tokens only).

With no prompts (or zero-length ones) both equal open_clip's ``encode_text`` / ``encode_image`` (tested).
"""
from collections.abc import Callable, Sequence

import torch
from open_clip.transformer import VisionTransformer

BeforeBlock = Callable[[int, torch.Tensor], torch.Tensor]


def transformer_blocks(transformer):
    """The residual blocks of an open_clip Transformer (``resblocks``), or a ValueError."""
    blocks = getattr(transformer, "resblocks", None)
    if blocks is None:
        raise ValueError(f"{type(transformer).__name__} has no resblocks: not an open_clip Transformer.")
    return blocks


def run_blocks(transformer, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
               before_block: BeforeBlock | None = None) -> torch.Tensor:
    """(N, L, D) -> (N, L, D) through ``transformer``'s blocks; ``before_block(j, x)`` feeds block j."""
    batch_first = getattr(transformer, "batch_first", False)  # absent: older open_clip, (L, N, D) blocks
    for j, block in enumerate(transformer_blocks(transformer)):
        if before_block is not None:
            x = before_block(j, x)
        if batch_first:
            x = block(x, attn_mask=attn_mask)
        else:
            x = block(x.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)
    return x


def overwrite_tokens(x: torch.Tensor, start: int, values: torch.Tensor) -> torch.Tensor:
    """``x`` (N, L, D) with positions start .. start+n-1 replaced by ``values`` (n, D), for every row; a new
    tensor (autograd flows to ``values``, not to the replaced outputs). ``start`` < 0 counts from the end."""
    n = values.shape[0]
    if n == 0:
        return x
    start = start % x.shape[1] if start < 0 else start
    rows = values.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :start], rows, x[:, start + n:]], dim=1)


def replacing(prompts: Sequence[torch.Tensor], start: int) -> BeforeBlock:
    """The hook that overwrites positions ``start`` .. with ``prompts[j - 1]`` before block j >= 1."""
    prompts = list(prompts)

    def before_block(j, x):
        return overwrite_tokens(x, start, prompts[j - 1]) if 1 <= j <= len(prompts) else x

    return before_block


def deep_prompt_refusal(visual) -> str | None:
    """Why ``encode_image_deep`` cannot run on this image tower (None: it can)."""
    if not isinstance(visual, VisionTransformer):
        return (f"its image tower is {type(visual).__name__}, not a transformer (open_clip VisionTransformer); "
                f"ResNet towers (RN50, RN101) have no token sequence to prompt")
    return None


def encode_image_deep(visual: VisionTransformer, images: torch.Tensor, first: torch.Tensor | None = None,
                      deeper: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """(B, embed_dim) unnormalised image features with n prompt tokens: ``first`` (n, width) appended before
    ln_pre, ``deeper[j - 1]`` (n, width) replacing them before block j."""
    n = 0 if first is None else first.shape[0]
    if any(p.shape[0] != n for p in deeper):
        raise ValueError(f"every layer's vision prompt needs {n} tokens (the first layer's); got "
                         f"{[p.shape[0] for p in deeper]}.")
    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, grid**2, width)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    x = visual.patch_dropout(x)
    if n:
        x = torch.cat([x, first.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = visual.ln_pre(x)
    x = run_blocks(visual.transformer, x, before_block=replacing(deeper, -n) if n else None)
    if n:
        x = x[:, :-n]
    pooled, _ = visual._pool(x)
    return pooled @ visual.proj if visual.proj is not None else pooled


@torch.no_grad()
def check_image_forward(model, image_size: int, name: str = ""):
    """Fail early if ``encode_image_deep`` without prompts does not reproduce ``model.encode_image`` (another
    open_clip version or tower layout)."""
    device = next(model.parameters()).device
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.autocast(device.type, enabled=False):
        ours, ref = encode_image_deep(model.visual, x).float(), model.encode_image(x).float()
    err, scale = (ours - ref).abs().max().item(), ref.abs().max().item() or 1.0
    if err > 1e-4 * scale:
        raise RuntimeError(f"vr/deep_prompts.py: the prompt image forward differs from open_clip's encode_image for "
                           f"{name} (max abs difference {err:.3g}); this open_clip version or model is not supported.")
