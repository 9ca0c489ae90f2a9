"""Label-mapping VR for CLIP (ILM-VP, BLM, BLM+): a watermark prompt, S source texts, a counted mapping.

The source texts are the references' (baselines.md, section 8): every target class name (lower case,
``_`` and ``-`` as spaces) under T templates, template-major (text s = template s // C, class s % C); T =
81 with SOURCE_TEMPLATES "reference" ("This is a photo of a {}." and CLIP's 80 ImageNet templates, in
open_clip's order). The mapping (vr/mapping.py) is re-estimated before every epoch from a no-grad pass
over the training set with the current prompt (trainers/base.py ``statistics_pass``); training images
get the test transform (the references use CLIP's preprocess, no augmentation). The mapping needs the
training labels of every class, so these methods cannot score unseen classes.
"""
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from vr import TextTable, aggregation_from_node, templates_for
from vr.mapping import check_settings

from .base import VRTrainer
from .vr_keys import add_common_keys

FIRST_TEMPLATE = "This is a photo of a {}."  # the references' DEFAULT_TEMPLATE
SOURCE_TEMPLATES = ("reference", "vr", "coop")


def reference_templates():
    """The references' 81 templates: their default template, then CLIP's 80 ImageNet templates."""
    return [FIRST_TEMPLATE] + [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def source_name(classname: str) -> str:
    """A class name as the references write it into a template: lower case, '_' and '-' as spaces."""
    return classname.lower().replace("_", " ").replace("-", " ")


def source_table(classnames, templates) -> TextTable:
    """The free-layout table of S = T x C source texts, template-major; text s names class s % C."""
    c = len(classnames)
    texts = [[t.format(source_name(name))] for t in templates for name in classnames]
    return TextTable.free(texts, [s % c for s in range(len(texts))], c)


def _add_mapping_keys(node):
    add_common_keys(node, prompt="watermark", input_size=224, pad=30, batch_size_1shot=0)
    node.SOURCE_TEMPLATES = "reference"  # reference: 81 templates | vr / coop: one template (S = C)


@register_config
def _label_mapping_keys(cfg):
    _add_mapping_keys(ensure_node(cfg, "TRAINER.ILMVP"))
    for name in ("BLM", "BLMPLUS"):
        node = ensure_node(cfg, f"TRAINER.{name}")
        _add_mapping_keys(node)
        node.LAPLACE = 1.0  # lambda, added to each source text's count sum
    cfg.TRAINER.BLMPLUS.TOPK_RATIO = 0.15  # k = max(1, floor(ratio x number of classes)) probabilities per sample


class LabelMappingTrainer(VRTrainer):
    """Shared code: the source texts, the mapping files. Subclasses name their mapping (``AGGREGATION``, a
    registered aggregation kind, vr/mapping.py)."""

    TRAIN_AUGMENT = False
    NEEDS_TEXT_ENCODER = False  # also maps a classifier's source classes (trainers/classifier_source.py)
    CLASS_TRANSFER = ""  # the mapping is counted from the training labels of every class

    def check_method_cfg(self, cfg):
        choice = str(cfg.TRAINER[self.NODE].SOURCE_TEMPLATES).lower()
        if choice not in SOURCE_TEMPLATES:
            raise ValueError(f'Unknown source templates "{choice}" (TRAINER.{self.NODE}.SOURCE_TEMPLATES). Use one '
                             f"of: {', '.join(SOURCE_TEMPLATES)}.")
        node = cfg.TRAINER[self.NODE]
        check_settings(laplace=node.get("LAPLACE"), topk_ratio=node.get("TOPK_RATIO"), node=f"TRAINER.{self.NODE}")
        if choice != "reference":
            templates_for(cfg.DATASET.NAME, choice)  # a dataset without a CoOp template fails here, not later

    def source_templates(self):
        choice = str(self.vcfg.SOURCE_TEMPLATES).lower()
        return reference_templates() if choice == "reference" else templates_for(self.cfg.DATASET.NAME, choice)

    def build_text(self, classnames):
        templates = self.source_templates()
        print(f"Source texts: {len(templates)} templates x {len(classnames)} class names "
              f"(SOURCE_TEMPLATES {self.vcfg.SOURCE_TEMPLATES})")
        return source_table(classnames, templates)

    def build_aggregation(self, table):
        mapping = aggregation_from_node(self.AGGREGATION, table, self.vcfg)
        print(f"{self.NODE}: {mapping.WEIGHT_KIND} of {len(table):,} source texts onto {table.num_classes} classes"
              + (f" (BLM+ counts each sample's top {mapping.topk} source probabilities)" if hasattr(mapping, "topk")
                 else ""))
        return mapping

    def classifier_mapping(self, table):
        return self.build_aggregation(table)  # the method's own mapping, over the classifier's source classes

    def run_record(self):
        agg = self.model.aggregation
        if self.on_classifier:
            return {}  # classifier_record says it all
        return {"source_templates": str(self.vcfg.SOURCE_TEMPLATES).lower(), "source_texts": len(self.model.text_table),
                "mapping": agg.WEIGHT_KIND, "mapping_estimates": int(agg.epochs_estimated)}

    def write_method_files(self, output_dir):
        self.write_label_map(output_dir)


@TRAINER_REGISTRY.register()
class ILMVP(LabelMappingTrainer):
    """ILM-VP (Chen et al., CVPR 2023): the watermark prompt and an iterative one-to-one label mapping."""

    NODE, AGGREGATION = "ILMVP", "ilm"


@TRAINER_REGISTRY.register()
class BLM(LabelMappingTrainer):
    """BLM (Cai et al., NeurIPS 2024): Bayesian label mapping, Laplace-smoothed argmax counts."""

    NODE, AGGREGATION = "BLM", "blm"


@TRAINER_REGISTRY.register()
class BLMPlus(LabelMappingTrainer):
    """BLM+ (Cai et al., NeurIPS 2024): Bayesian label mapping from each sample's top-k source probabilities."""

    NODE, AGGREGATION = "BLMPLUS", "blm_plus"
