"""What a VR trainer does differently on a classifier backbone (backbones/classifiers.py, vr/classifier.py).

The 'texts' are the classifier's source classes (ImageNet-1k's 1,000 names) and the class logits come from
a label mapping of them: the label-mapping trainers (ILM-VP, BLM, BLM+) estimate theirs as on CLIP; VP and
AR, which on CLIP score one template per class, get a fixed random one-to-one map drawn from the run's seed
(Elsayed et al.'s adversarial reprogramming keeps a fixed map; the prompt learns to fit it). The map is a
buffer of the model, so a checkpoint evaluates with the map it was trained with.
"""
import os

from vr.classifier import FixedMapping, mapping_rows

from .backbone_kind import is_classifier_encoder
from .run_files import save_tensors, write_csv

MAP_FILE = "label_map.csv"


class ClassifierSource:
    """Mixed into VRTrainer: the classifier-backbone hooks (a no-op on CLIP)."""

    NEEDS_TEXT_ENCODER = True  # VP, AR and the label-mapping trainers say False (trainers/backbone_kind.py)

    @property
    def on_classifier(self) -> bool:
        return is_classifier_encoder(getattr(self, "clip", None))

    def classifier_mapping(self, table):
        """The aggregation over the source classes: a fixed random one-to-one map (seed: the run's)."""
        seed = self.sampling_seed()
        mapping = FixedMapping.random(len(table), table.num_classes, seed)
        print(f"{self.NODE} on a classifier: a fixed random one-to-one map of {len(table):,} source classes onto "
              f"{table.num_classes} classes (seed {seed}), never re-estimated")
        return mapping

    def classifier_record(self):
        """results.json / vr_texts.json facts of a classifier run (empty on CLIP)."""
        if not self.on_classifier:
            return {}
        agg = self.model.aggregation
        return {"backbone_kind": "classifier", "source_classes": len(self.model.text_table),
                "classifier_weights": self.clip.backbone.weights, "classifier": self.clip.backbone.architecture,
                "mapping": agg.WEIGHT_KIND, "mapping_estimates": int(agg.epochs_estimated)}

    def write_label_map(self, output_dir):
        """label_map.csv (each class's largest mapping weights and their sources) and label_map.pt."""
        agg, table = self.model.aggregation, self.model.text_table
        write_csv(os.path.join(output_dir, MAP_FILE), ["label", "class", "rank", "source", "source_text", "weight"],
                  mapping_rows(agg, table, self.dm.dataset.classnames))
        save_tensors(os.path.join(output_dir, "label_map.pt"),
                     {"omega": agg.weight.cpu(), "counts": agg.last_counts.cpu(), "kind": agg.WEIGHT_KIND})
