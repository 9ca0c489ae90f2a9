"""The frozen CLIP, as the VR methods use it.

Only the visual prompts are trained: CLIP stays in eval mode with ``requires_grad=False`` everywhere, so
backward computes gradients w.r.t. the input images only. ``FrozenCLIP`` is deliberately NOT an
``nn.Module``: a module holding it never puts CLIP's weights into its state_dict (checkpoints hold what
was learned, not the backbone) and ``.train()`` on that module never switches CLIP out of eval mode.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F

# The VR references (AttrVR, DVP) clamp logit_scale to [0, 4.6052] (ln 100, rounded) after every optimiser step.
VR_LOGIT_SCALE_MAX = 4.6052


class FrozenCLIP:
    """Wraps a ``backbones.ClipBackbone``: batched text encoding, input-gradient image encoding."""

    def __init__(self, backbone):
        self.backbone = backbone
        self.model = backbone.model
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = backbone.tokenizer
        self.image_size = int(backbone.image_size)
        self.mean = tuple(backbone.mean)
        self.std = tuple(backbone.std)
        self.name = backbone.name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
        unique: List[str] = list(dict.fromkeys(texts))
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
