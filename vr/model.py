"""ReprogrammedCLIP: the one model family behind ZS, VP, AR, AttrVR, DVP-cse and DVP-cls.

    x in [0,1] --prompts (v of them)--> v*B images --frozen CLIP (one call)--> (v, B, D) features
    features x all text embeddings (one matmul) --> (v, B, N) --pick each text's own prompt--> (B, N)
    --> text logits z: (B, C, M') for class blocks, (B, N) free --aggregation--> class logits (B, C)

Swapping the prompt module, the text table or the aggregation gives each method.
The frozen CLIP is held outside the module tree (see vr/clip.py), so ``state_dict`` holds exactly what
was learned or chosen: prompt parameters, the text table (strings, class/slot/prompt indices) and the
aggregation's state (PRM weights and counts); a load that brings other strings re-encodes them.

``first_layer_split`` (default on): for an additive prompt on a ViT / ResNet tower the encoder's first
layer is applied to the image part and the prompt part separately (vr/clip.py); exact up to float
rounding. Where it cannot be exact it is not used and ``first_layer_split_status`` says why.

The logits use the VR references' capped logit scale (vr/clip.py) and, with ``scale_first`` (default),
their order: the features are multiplied by the scale before the text matmul, so under fp16 autocast the
scaled features are what is rounded to fp16, as in ``exp * x_emb @ t_emb``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .aggregation import Aggregation
from .clip import FrozenCLIP
from .prompts import VisualPrompt
from .text import TextTable


def own_prompt_scores(scores: torch.Tensor, table: TextTable) -> torch.Tensor:
    """(v, B, N) scores of every text under every prompt -> each text under ITS prompt, in the table's logit
    shape ((B, C, M') or (B, N))."""
    v, b = scores.shape[:2]
    if v == 1:
        picked = scores[0]
    else:
        index = table.prompts.view(1, 1, -1).expand(1, b, -1)
        picked = scores.gather(0, index)[0]  # (B, N)
    return picked.view(table.logit_shape(b))


class ReprogrammedCLIP(nn.Module):
    def __init__(self, encoder: FrozenCLIP, prompts: VisualPrompt, text_table: TextTable,
                 aggregation: Aggregation, encoder_chunk: int = 0, first_layer_split: bool = True,
                 scale_first: bool = True):
        super().__init__()
        if text_table.num_prompts != prompts.num_prompts:
            raise ValueError(f"The text table assigns texts to {text_table.num_prompts} prompts but "
                             f"{prompts.num_prompts} visual prompts were built.")
        if prompts.image_size != encoder.image_size:
            raise ValueError(f"The prompts produce {prompts.image_size}px images but the backbone "
                             f"{encoder.name} expects {encoder.image_size}px.")
        aggregation.check_table(text_table)
        self.__dict__["encoder"] = encoder  # not a submodule: never saved, never put in train mode
        self.prompts = prompts
        self.text_table = text_table
        self.aggregation = aggregation
        self.encoder_chunk = int(encoder_chunk)
        refusal = (encoder.first_layer_split_refusal() if prompts.ADDITIVE
                   else f"the {prompts.kind} prompt is not additive")
        self.first_layer_split = bool(first_layer_split) and refusal is None
        if not first_layer_split:
            self.first_layer_split_status = "off (option)"
        else:
            self.first_layer_split_status = f"off: {refusal}" if refusal else "on"
        self.scale_first = bool(scale_first)  # False: scale after the matmul (the toolkit's earlier order)
        self.register_load_state_dict_post_hook(ReprogrammedCLIP._refresh_after_load)
        self.refresh_text()

    @property
    def num_classes(self) -> int:
        return self.text_table.num_classes

    def refresh_text(self) -> None:
        """(Re-)encode the text table if its strings changed (construction, checkpoint load)."""
        if self.text_table.stale:
            self.text_table.encode(self.encoder)

    @staticmethod
    def _refresh_after_load(module: ReprogrammedCLIP, incompatible_keys: object) -> None:
        module.refresh_text()

    def image_features(self, x01: torch.Tensor) -> torch.Tensor:
        """(v, B, D) normalised features of the batch under each of the v prompts (one encoder call)."""
        if self.first_layer_split:
            pixels, pattern = self.prompts.additive_parts(x01)
            feats = self.encoder.encode_image_split(pixels, pattern, self.prompts.mean, self.prompts.std,
                                                    self.prompts.num_prompts, chunk=self.encoder_chunk)
        else:
            feats = self.encoder.encode_image(self.prompts(x01), chunk=self.encoder_chunk)
        return feats.view(self.prompts.num_prompts, x01.shape[0], -1)

    def description_logits(self, x01: torch.Tensor) -> torch.Tensor:
        """z: each text scored by the image features of ITS prompt, times CLIP's logit scale; (B, C, M') for a
        table in class blocks, (B, N) for the free layout (vr/text.py)."""
        self.refresh_text()
        feats = self.image_features(x01)  # (v, B, D)
        v, b, d = feats.shape
        table = self.text_table
        emb = table.embeddings.to(feats.dtype)
        scale, flat = self.encoder.capped_logit_scale, feats.reshape(v * b, d)
        scores = (scale * flat) @ emb.t() if self.scale_first else scale * (flat @ emb.t())  # (v*B, N)
        return own_prompt_scores(scores.view(v, b, -1), table)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.aggregation(self.description_logits(x01))

    def forward_with_descriptions(self, x01: torch.Tensor):
        """(class logits, description logits): training needs both (loss, PRM statistics)."""
        z = self.description_logits(x01)
        return self.aggregation(z), z

    @torch.no_grad()
    def explain(self, x01: torch.Tensor, labels, classnames=None, top: int = 5):
        """Why each image scored class ``labels[b]``, when that logit is a fixed weighted sum of text logits
        (``Aggregation.class_weights``): each prompt's weight mass and part of the logit, and the texts with
        the largest weight x logit (texts of weight 0 do not count; ``top`` of them). One dict per image, or
        None when the aggregation has no such weights (identity over one text, top-k). The signature is
        scripts/predict.py's ``explain`` contract (``classnames`` is not needed here)."""
        table, agg = self.text_table, self.aggregation
        z = self.description_logits(x01).float().reshape(x01.shape[0], -1)  # entry order of the table
        out = []
        for b, label in enumerate(int(c) for c in labels):
            found = agg.class_weights(table, label)
            if found is None or (table.blocked and table.num_slots < 2):  # one text: nothing to explain
                out.append(None)
                continue
            entries, w = found[0].to(z.device), found[1].to(z.device).float()
            scores = w * z[b, entries]  # the class logit is scores.sum()
            prompts = table.prompts[entries].to(z.device)
            parts = []
            for i in range(table.num_prompts):
                mine = prompts == i
                parts.append({"prompt": i, "mass": float(w[mine].sum()), "logit_part": float(scores[mine].sum()),
                              "descriptions": int(mine.sum())})
            used = torch.nonzero(w > 0).flatten()
            order = used[torch.argsort(scores[used], descending=True)][:max(0, int(top))].tolist()
            texts = [{"text": table.entry_text(int(entries[j])), "prompt": int(prompts[j]), "weight": float(w[j]),
                      "logit": float(z[b, entries[j]]), "score": float(scores[j])} for j in order]
            out.append({"weights": agg.WEIGHT_KIND, "class_logit": float(scores.sum()), "prompts": parts,
                        "descriptions": texts})
        return out

    def num_trainable_entries(self) -> int:
        return self.prompts.num_trainable_entries()
