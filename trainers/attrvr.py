"""AttrVR (ICLR 2025): one padding prompt scored against two description sets per class.

DesAttr (``attributes/<key>_des.json``) and DistAttr (``_dist.json``), m sentences each; per set a
class's logit is the mean of its top-k description logits; final = lambda * des + (1 - lambda) * dist.
"""
from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from vr import LambdaMix, TopKMean, description_table

from .base import VRTrainer
from .vr_keys import add_common_keys, add_description_keys, check_description_cfg

FILES = [("attributes", "des"), ("attributes", "dist")]


@register_config
def _attrvr_keys(cfg):
    node = ensure_node(cfg, "TRAINER.ATTRVR")
    add_common_keys(node, prompt="padding", input_size=192, batch_size_1shot=16)  # the reference: 16 for 1 shot
    add_description_keys(node, m=20)
    node.K = 3  # top-k descriptions averaged per class and set
    node.LAMBDA = 0.5  # weight of DesAttr; DistAttr gets 1 - lambda


@TRAINER_REGISTRY.register()
class AttrVR(VRTrainer):
    NODE = "ATTRVR"
    CLASS_TRANSFER = ("learned prompt kept; unseen classes are scored by their own DesAttr/DistAttr descriptions, "
                      "sampled as in training (seeded); seen classes keep their trained descriptions")

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER.ATTRVR
        check_description_cfg(node, self.NODE)
        if not 1 <= node.K <= node.M:
            raise ValueError(f"TRAINER.ATTRVR.K = {node.K} must lie in [1, M] with M = {node.M} sentences per "
                             f"class: lower K or raise M.")
        if not 0.0 <= node.LAMBDA <= 1.0:
            raise ValueError(f"TRAINER.ATTRVR.LAMBDA must lie in [0, 1], got {node.LAMBDA}.")
        self.resolve_description_files(cfg, FILES)

    def build_text(self, classnames):
        return description_table(classnames, self.load_descriptions(classnames, FILES, self.vcfg.M))

    def build_aggregation(self, table):
        k = self.vcfg.K
        return LambdaMix(TopKMean(k), TopKMean(k), split=self.vcfg.M, lam=self.vcfg.LAMBDA)
