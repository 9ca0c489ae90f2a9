"""Reprogramming a frozen classifier: its source-class logits, mapped onto the target classes.

    x in [0,1] --prompt--> images --frozen classifier (BatchNorm in inference mode)--> (B, S) source logits
    --label mapping (vr/mapping.py: ILM, BLM, BLM+, or a fixed random one-to-one map)--> (B, C) class logits

The source "texts" are the classifier's class names (ImageNet-1k: 1,000), held in a free-layout
``TextTable`` that is never encoded: its strings make mappings readable (label_map.csv, predict.py,
plot_prm.py) and travel with checkpoints, so a checkpoint of another source label space is refused. The
logits are the classifier's own (no logit scale; the ILM-VP and BLM references on ResNets use them as is).
"""
from collections.abc import Sequence

import torch

from .frozen import FrozenBackbone
from .mapping import LabelMapping, register_aggregation
from .model import ReprogrammedCLIP
from .text import TextTable


class FrozenClassifier(FrozenBackbone):
    """Wraps a ``backbones.classifiers.ClassifierBackbone``: input-gradient logits and pooled features
    (frozen, BatchNorm kept in inference mode: vr/frozen.py)."""

    IS_CLASSIFIER = True

    def __init__(self, backbone):
        super().__init__(backbone)
        self.classnames = tuple(backbone.classnames)

    def logits(self, images: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        """(B, S) source logits of normalised images; gradients reach ``images`` only."""
        self.model.eval()  # BatchNorm: running statistics, whatever happened to the module
        if chunk and chunk > 0 and images.shape[0] > chunk:
            return torch.cat([self.model(part) for part in images.split(int(chunk))])
        return self.model(images)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D) pooled penultimate features, unnormalised (the linear probe's input)."""
        self.model.eval()
        return self._pooled(images)

    def encode_image(self, images: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        """L2-normalised pooled penultimate features, as FrozenCLIP.encode_image."""
        parts = images.split(int(chunk)) if chunk and chunk > 0 else [images]
        feats = torch.cat([self.image_features(p) for p in parts])
        return feats / feats.norm(dim=-1, keepdim=True)

    @property
    def feature_dim(self) -> int:
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)
            return int(self.image_features(probe).shape[-1])

    def _pooled(self, images):
        model = self.model
        if hasattr(model, "forward_head"):  # timm
            return model.forward_head(model.forward_features(images), pre_logits=True)
        head = getattr(model, "fc", None) or getattr(model, "classifier", None)
        if head is None:
            raise ValueError(f"Cannot find the classifier head of {self.name} to take its input features.")
        features = []
        handle = (head if isinstance(head, torch.nn.Linear) else head[-1]).register_forward_hook(
            lambda module, args, out: features.append(args[0]))
        try:
            model(images)
        finally:
            handle.remove()
        return features[0]

    def first_layer_split_refusal(self) -> str | None:
        return "not implemented for classifier backbones (their first layer may use TF 'same' padding)"

    def source_table(self, num_classes: int) -> TextTable:
        """The free table of the S source class names (no entry names a target class)."""
        return TextTable.free([[name] for name in self.classnames], [-1] * len(self.classnames), num_classes)


class ReprogrammedClassifier(ReprogrammedCLIP):
    """ReprogrammedCLIP's interface (prompts, text_table, aggregation, explain, state_dict) over a classifier:
    the 'text logits' are the classifier's source-class logits."""

    def __init__(self, encoder: FrozenClassifier, prompts, text_table: TextTable, aggregation, encoder_chunk: int = 0,
                 **unused):
        if text_table.blocked or len(text_table) != len(encoder.classnames):
            raise ValueError(f"A classifier backbone needs the free table of its {len(encoder.classnames)} source "
                             f"classes, got {text_table.layout()}.")
        super().__init__(encoder, prompts, text_table, aggregation, encoder_chunk=encoder_chunk,
                         first_layer_split=False)
        self.first_layer_split_status = f"off: {encoder.first_layer_split_refusal()}"

    def refresh_text(self) -> None:
        """Nothing to encode: the source classes are the classifier's outputs."""

    def description_logits(self, x01: torch.Tensor) -> torch.Tensor:
        out = self.encoder.logits(self.prompts(x01), chunk=self.encoder_chunk)
        return out.view(self.prompts.num_prompts, x01.shape[0], -1)[0]

    def explain(self, x01: torch.Tensor, labels, classnames=None, top: int = 5):
        """ReprogrammedCLIP.explain, each record saying that its 'texts' are the classifier's source classes
        (scripts/predict.py prints e.g. 'T-shirt/top <- jersey')."""
        return [None if rec is None else {**rec, "sources": "source classes"}
                for rec in super().explain(x01, labels, classnames=classnames, top=top)]


@register_aggregation
class FixedMapping(LabelMapping):
    """A fixed one-to-one map of source classes to target classes, never re-estimated (VP / AR on a
    classifier: the prompt learns to fit it, as in Elsayed et al.'s adversarial reprogramming). ``initial``
    is the map; ``random`` draws it from a seed (the run's)."""

    kind = "fixed"
    STATISTICS = "training"  # no pass before each epoch; observe and end_epoch do nothing
    WEIGHT_KIND = "fixed one-to-one mapping"

    @classmethod
    def random(cls, num_sources: int, num_classes: int, seed: int) -> "FixedMapping":
        gen = torch.Generator().manual_seed(int(seed))
        return cls(num_sources, num_classes, torch.randperm(num_sources, generator=gen)[:num_classes].tolist())

    def observe(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        pass

    def end_epoch(self) -> None:
        return None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:,  self.weight.argmax(dim=0)]


def mapping_rows(aggregation, table: TextTable, classnames: Sequence[str], n: int = 5):
    """label_map.csv rows: each class's largest mapping weights and their source names."""
    rows = []
    for t, name in enumerate(classnames):
        for rank, (s, w) in enumerate(aggregation.mapping_of(t, n=n), 1):
            rows.append([t, name, rank, s, table.entry_text(s), f"{w:.6f}"])
    return rows
