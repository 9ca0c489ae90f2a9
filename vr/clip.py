"""The frozen CLIP, as the VR methods use it.

Only the visual prompts are trained: CLIP stays in eval mode with ``requires_grad=False`` everywhere, so
backward computes gradients w.r.t. the input images only. ``FrozenCLIP`` is deliberately NOT an
``nn.Module``: a module holding it never puts CLIP's weights into its state_dict (checkpoints hold what
was learned, not the backbone) and ``.train()`` on that module never switches CLIP out of eval mode.

First-layer split (``encode_image_split``): the normalisation and the first layer of CLIP's image tower
(a ViT's patch-embedding convolution, a ResNet's stem convolution; zero padding) are affine, so for an
additive prompt ``first(normalise(pixels) + pattern) = conv(pixels; W / std) + [conv(pattern; W) -
conv(mean / std; W) + bias]``. The image term is computed once per image (no gradient, shared by the v
prompts), the bracket once per prompt (shared by the batch, the only input-gradient path), and the rest
of the tower runs on their broadcast sum. Exact up to float rounding; the plain path stays available.
"""
import contextlib
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer

from .frozen import FrozenBackbone

SPLIT_TOWERS = (VisionTransformer, ModifiedResNet)  # towers whose forward starts with conv1(input)

# The VR references (AttrVR, DVP) clamp logit_scale to [0, 4.6052] (ln 100, rounded) after every optimiser step.
VR_LOGIT_SCALE_MAX = 4.6052


class FrozenCLIP(FrozenBackbone):
    """Wraps a ``backbones.ClipBackbone``: batched text encoding, input-gradient image encoding."""

    def __init__(self, backbone):
        super().__init__(backbone)
        self.tokenizer = backbone.tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        """``logit_scale.exp()`` (100 for OpenAI CLIP), as a detached scalar tensor."""
        return self.model.logit_scale.detach().exp()

    @property
    def capped_logit_scale(self) -> torch.Tensor:
        """The VR references' scale, ``exp(clamp(logit_scale, 0, 4.6052))``: OpenAI's fp16 checkpoints store
        4.60546875 (scale 100.030), capped to 100.003; the frozen model itself is never modified."""
        return self.model.logit_scale.detach().clamp(0.0, VR_LOGIT_SCALE_MAX).exp()

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, D) L2-normalised fp32 embeddings; each distinct string is encoded once."""
        texts = list(texts)
        if not texts:
            raise ValueError("encode_text got an empty list of texts.")
        unique: list[str] = list(dict.fromkeys(texts))
        position = {t: i for i, t in enumerate(unique)}
        chunks = []
        with torch.autocast(self.device.type, enabled=False):
            for start in range(0, len(unique), batch_size):
                tokens = self.tokenizer(unique[start:start + batch_size]).to(self.device)
                chunks.append(self.model.encode_text(tokens).float())
        feats = F.normalize(torch.cat(chunks), dim=-1)
        index = torch.tensor([position[t] for t in texts], device=feats.device)
        return feats[index]

    def encode_image(self, images: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        """L2-normalised features of normalised images; ``chunk`` > 0 splits the batch to save memory.

        Gradients flow to ``images`` (the prompts) but never into CLIP's frozen weights.
        """
        if chunk and chunk > 0 and images.shape[0] > chunk:
            feats = torch.cat([self.model.encode_image(part) for part in images.split(int(chunk))])
        else:
            feats = self.model.encode_image(images)
        return feats / feats.norm(dim=-1, keepdim=True)

    def first_layer_split_refusal(self) -> str | None:
        """Why the first-layer split cannot be exact for this backbone (None: it can)."""
        visual = self.model.visual
        if type(visual) not in SPLIT_TOWERS:
            return (f"the image tower {type(visual).__name__} is not one whose forward starts with its first "
                    f"convolution ({', '.join(t.__name__ for t in SPLIT_TOWERS)})")
        conv = getattr(visual, "conv1", None)
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros":
            return "the first layer is not a zero-padded nn.Conv2d"
        return None

    def encode_image_split(self, pixels: torch.Tensor, pattern: torch.Tensor | None, mean: torch.Tensor,
                           std: torch.Tensor, num_prompts: int, chunk: int = 0) -> torch.Tensor:
        """Prompt-major (v*B, D) features of ``normalise(pixels)[None] + pattern[:, None]`` (see the module).

        ``pixels`` (B, 3, S, S) before normalisation; ``pattern`` (v, 3, S, S) in normalised space or None
        (the same image for every prompt); ``mean``, ``std`` (1, 3, 1, 1) the prompt's normalisation.
        """
        reason = self.first_layer_split_refusal()
        if reason:
            raise ValueError(f"The first-layer split cannot run on {self.name}: {reason}. Set "
                             f"TRAINER.<NAME>.FIRST_LAYER_SPLIT False.")
        conv = self.model.visual.conv1
        weight = conv.weight

        def first(x, w):
            return F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)

        offset = -first((mean / std).to(weight.dtype).expand(1, 3, *pixels.shape[2:]), weight)  # mean, once
        if conv.bias is not None:
            offset = offset + conv.bias.view(1, -1, 1, 1)
        image = first(pixels, weight / std.view(1, 3, 1, 1).to(weight.dtype))  # (B, C, h, w)
        per_prompt = offset if pattern is None else first(pattern, weight) + offset  # (v or 1, C, h, w)
        out = image.unsqueeze(0) + per_prompt.unsqueeze(1)  # (v or 1, B, C, h, w)
        if pattern is None and num_prompts > 1:
            out = out.expand(num_prompts, *out.shape[1:])
        out = out.reshape(-1, *out.shape[2:])
        with self._after_first_layer():  # the rest of the tower, chunked and normalised as encode_image does
            return self.encode_image(out, chunk=chunk)

    @contextlib.contextmanager
    def _after_first_layer(self):
        """While inside, the image encoder's first layer is the identity (it gets conv1's output)."""
        visual = self.model.visual
        layer = visual.conv1
        visual.conv1 = nn.Identity()
        try:
            yield
        finally:
            visual.conv1 = layer
