"""Visual-reprogramming building blocks shared by all VR trainers.

prompts      registered prompt kinds (padding / watermark / none); v prompts as one parameter, applied in one op
coordinator  BlackVIP's input-dependent prompt: a frozen image encoder and a learned decoder (kind 'coordinator')
clip         FrozenCLIP: batched text encoding, input-gradient image encoding (plain or first-layer split)
text         templates (VR, CoOp), TextTable of (class, slot, prompt) entries (class blocks or free)
grouping     which prompt scores which description: causes, k-means, random
aggregation  text logits -> class logits: identity, mean, top-k mean, lambda mixing; the aggregation registry
kinds        the registries of named kinds (prompts, aggregations)
prm          DVP's probabilistic reweighting matrix
mapping      label mapping of source texts to classes by counting: ILM (one-to-one), BLM, BLM+
model        ReprogrammedCLIP = prompts + text table + aggregation
"""
from .aggregation import (Aggregation, Identity, LambdaMix, Mean, TopKMean, aggregation_class, aggregation_from_node,
                          aggregation_kinds, register_aggregation)
from .clip import FrozenCLIP
from .coordinator import CoordinatorPrompt
from .mapping import BayesianMapping, BayesianTopKMapping, LabelMapping, OneToOneMapping
from .grouping import cause_groups, group_sizes, kmeans_groups, nearest_centroid, random_groups
from .model import ReprogrammedCLIP
from .prm import PRM
from .prompts import (AdditiveParts, NoPrompt, PaddingPrompt, VisualPrompt, WatermarkPrompt, build_prompt,
                      loader_size_for, prompt_class, prompt_from_node, prompt_kinds, prompt_settings, register_prompt)
from .text import VR_TEMPLATE, TextTable, class_text, description_table, template_table, templates_for

__all__ = [
    "Aggregation", "Identity", "LambdaMix", "Mean", "TopKMean", "PRM", "BayesianMapping", "BayesianTopKMapping",
    "LabelMapping", "OneToOneMapping", "aggregation_class", "aggregation_from_node", "aggregation_kinds",
    "register_aggregation", "CoordinatorPrompt", "FrozenCLIP", "ReprogrammedCLIP",
    "cause_groups", "group_sizes", "kmeans_groups", "nearest_centroid", "random_groups", "AdditiveParts", "NoPrompt",
    "PaddingPrompt", "VisualPrompt", "WatermarkPrompt", "build_prompt", "loader_size_for", "prompt_class",
    "prompt_from_node", "prompt_kinds", "prompt_settings", "register_prompt", "VR_TEMPLATE", "TextTable", "class_text",
    "description_table", "template_table",
    "templates_for",
]
