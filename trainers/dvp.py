"""DVP (ICML 2025): v decoupled padding prompts, each scoring its own group of descriptions, and the PRM.

DVP_CSE groups by cause: prompt i scores the m sentences per class of cause file i
(``causes/<key>_<suffix>.json`` for each suffix in TRAINER.DVP_CSE.CAUSES).
DVP_CLS groups by k-means cluster of the DesAttr sentences (``attributes/<key>_des.json``): each
description is scored by the prompt of its cluster.
Both: epoch 0 only collects PRM statistics (it counts in OPTIM.MAX_EPOCH); the PRM is re-estimated at
every epoch end; at the end of training the PRM and the class-by-prompt table go into OUTPUT_DIR.
"""
import os

import torch
from yacs.config import CfgNode as CN

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from vr import PRM, aggregation_from_node, description_table, kmeans_groups, nearest_centroid, random_groups

from .base import VRTrainer
from .evaluated_run import evaluated_checkpoint
from .run_files import save_tensors, write_csv
from .run_record import CheckpointError
from .vr_keys import add_common_keys, add_description_keys, check_description_cfg

AGGREGATIONS = ("prm", "mean")
GROUPINGS = ("kmeans", "random")


def dataset_v(node, key):
    """DVP-cls's v for description key ``key`` when TRAINER.DVP_CLS.V is 0: the loader's ``dvp_cls_v``
    (datasets/catalog.py), else V_DEFAULT. A legacy V_PER_DATASET entry must agree with it."""
    from datasets.catalog import dvp_cls_v

    v = dvp_cls_v(key)
    v = int(node.V_DEFAULT) if v is None else v
    legacy = node.V_PER_DATASET.get(key)
    if legacy is not None and int(legacy) != v:
        raise ValueError(f"TRAINER.DVP_CLS.V_PER_DATASET.{key} is {legacy}, but v of this dataset is {v} (its "
                         f"loader's dvp_cls_v, or V_DEFAULT): set TRAINER.DVP_CLS.V {legacy} to override it.")
    return v


def _add_dvp_keys(node):
    add_common_keys(node, prompt="padding", input_size=192, batch_size_1shot=0)  # the reference: 64 at 1 shot too
    add_description_keys(node, m=20)
    node.PRM_TOPK = 3  # top-k descriptions of the true class counted per sample
    node.AGGREGATION = "prm"  # prm | mean (ablation: uniform weights, never re-estimated)


@register_config
def _dvp_cse_keys(cfg):
    node = ensure_node(cfg, "TRAINER.DVP_CSE")
    _add_dvp_keys(node)
    node.CAUSES = ["cse_1", "cse_2", "cse_3"]  # cause-file suffixes, one prompt each (v = len)


@register_config
def _dvp_cls_keys(cfg):
    node = ensure_node(cfg, "TRAINER.DVP_CLS")
    _add_dvp_keys(node)
    node.ATTRIBUTES = "des"  # the attribute file that is clustered
    node.V = 0  # number of prompts / clusters; 0: the dataset loader's dvp_cls_v, else V_DEFAULT
    node.V_PER_DATASET = CN(new_allowed=True)  # legacy (older configs set it): must agree with the loader
    node.V_DEFAULT = 3
    node.GROUPING = "kmeans"  # kmeans | random (ablation: seeded balanced random groups)
    # KMeans initialisations, recorded. The reference's KMeans(n_clusters=v, random_state=0) makes 1 under
    # scikit-learn >= 1.4 ('auto') and 10 under < 1.4: 10 reproduces the reference on an old scikit-learn.
    node.KMEANS_N_INIT = 1
    node.GROUPING_SEED = 0  # KMeans random_state (reference: 0) / seed of the random grouping


class DVPBase(VRTrainer):
    """Shared DVP code: prompts per group, PRM (or mean), the statistics epoch, PRM files."""

    STATS_EPOCHS = 1

    def check_dvp_cfg(self, cfg, num_slots):
        node = cfg.TRAINER[self.NODE]
        check_description_cfg(node, self.NODE)
        if node.AGGREGATION not in AGGREGATIONS:
            raise ValueError(f'Unknown aggregation "{node.AGGREGATION}" (TRAINER.{self.NODE}.AGGREGATION). '
                             f"Use one of: {', '.join(AGGREGATIONS)}.")
        if not 1 <= node.PRM_TOPK <= num_slots:
            raise ValueError(f"TRAINER.{self.NODE}.PRM_TOPK = {node.PRM_TOPK} must lie in [1, M'] where M' = "
                             f"{num_slots} descriptions per class: lower PRM_TOPK or raise M.")

    def build_aggregation(self, table):
        return aggregation_from_node(self.vcfg.AGGREGATION, table, self.vcfg, key=f"TRAINER.{self.NODE}.AGGREGATION")

    def write_method_files(self, output_dir):
        prm = self.model.aggregation
        if not isinstance(prm, PRM):
            print("Aggregation 'mean': no PRM files written.")
            return
        table = self.model.text_table
        classnames = list(self.dm.dataset.classnames)
        grid = table.prompt_grid().cpu()
        contrib = prm.contributions(grid, table.num_prompts).cpu()
        weight, counts = prm.weight.cpu(), prm.last_counts.cpu()
        save_tensors(os.path.join(output_dir, "prm.pt"), {
            "omega_blocks": weight,  # (C, M'): omega[c*M' + j, c]; expand with vr.PRM.omega()
            "counts": counts,  # (C, M') counts of the last re-estimation
            "prompt_of_slot": grid,  # (C, M')
            "contributions": contrib,  # (C, v)
            "classnames": classnames,
            "texts": [table.texts_of_class(c) for c in range(table.num_classes)],
            "topk": prm.topk,
        })
        rows = [[c, j, int(grid[ci, j]), f"{float(weight[ci, j]):.6f}", int(counts[ci, j]),
                 table.texts_of_class(ci)[j]]
                for ci, c in enumerate(classnames) for j in range(table.num_slots)]
        write_csv(os.path.join(output_dir, "prm.csv"), ["class", "slot", "prompt", "weight", "count", "text"], rows)
        write_csv(os.path.join(output_dir, "prm_contributions.csv"),
                  ["class"] + [f"prompt_{i}" for i in range(table.num_prompts)],
                  [[c] + [f"{float(x):.6f}" for x in contrib[ci]] for ci, c in enumerate(classnames)])
        print(f"PRM written to {os.path.join(output_dir, 'prm.pt')} (+ prm.csv, prm_contributions.csv)")


@TRAINER_REGISTRY.register()
class DVP_CSE(DVPBase):
    """Decoupled by cause: prompt i <-> cause file i."""

    NODE = "DVP_CSE"
    CLASS_TRANSFER = ("learned prompts kept; prompt i scores each unseen class's cause-i descriptions (sampled as "
                      "in training, seeded) and unseen classes get the uniform PRM row; seen classes keep their "
                      "trained descriptions and PRM rows")

    def files(self, cfg=None):
        return [("causes", s) for s in (cfg or self.cfg).TRAINER.DVP_CSE.CAUSES]

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER.DVP_CSE
        if not node.CAUSES:
            raise ValueError("TRAINER.DVP_CSE.CAUSES is empty: give at least one cause-file suffix, e.g. "
                             "['cse_1', 'cse_2', 'cse_3'].")
        if len(set(node.CAUSES)) != len(node.CAUSES):
            raise ValueError(f"TRAINER.DVP_CSE.CAUSES lists a cause file twice: {list(node.CAUSES)}.")
        self.check_dvp_cfg(cfg, node.M * len(node.CAUSES))
        self.resolve_description_files(cfg, self.files(cfg))

    def num_prompts(self):
        return len(self.vcfg.CAUSES)

    def build_text(self, classnames):
        sets = self.load_descriptions(classnames, self.files(), self.vcfg.M)
        return description_table(classnames, sets, prompt_of_set=list(range(len(sets))))

    def run_record(self):
        return {"causes": list(self.vcfg.CAUSES)}


@TRAINER_REGISTRY.register()
class DVP_CLS(DVPBase):
    """Decoupled by cluster: k-means on all C*m description embeddings, prompt i <-> cluster i."""

    NODE = "DVP_CLS"
    CLASS_TRANSFER = ("learned prompts kept; each description of an unseen class (sampled as in training, seeded) "
                      "goes to the prompt of the nearest stored k-means centroid and unseen classes get the "
                      "uniform PRM row; seen classes keep their trained descriptions, clusters and PRM rows")

    def num_clusters(self, cfg=None):
        cfg = cfg or self.cfg
        node = cfg.TRAINER.DVP_CLS
        if node.V > 0:
            return int(node.V)
        if self.checkpoint_v() is not None:
            return self.checkpoint_v()
        return dataset_v(node, self.description_key_of(cfg) or cfg.DATASET.NAME)

    def checkpoint_v(self):
        """With V 0, an evaluated checkpoint's v (its record's prompt.num_prompts): a trained model keeps its
        number of prompts on any dataset (xd.sh tests an ImageNet run on EuroSAT); decided once, when built."""
        if not hasattr(self, "_checkpoint_v"):
            path, record = evaluated_checkpoint()
            v = ((record or {}).get("prompt") or {}).get("num_prompts")
            self._checkpoint_v = int(v) if v else None
            if v:
                own = dataset_v(self.cfg.TRAINER.DVP_CLS, self.description_key_of(self.cfg) or self.cfg.DATASET.NAME)
                print(f"DVP_CLS: TRAINER.DVP_CLS.V is 0, so v = {v} is taken from the evaluated checkpoint {path} "
                      f"(prompt.num_prompts; this dataset's own v would be {own})")
        return self._checkpoint_v

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER.DVP_CLS
        if node.GROUPING not in GROUPINGS:
            raise ValueError(f'Unknown grouping "{node.GROUPING}" (TRAINER.DVP_CLS.GROUPING). '
                             f"Use one of: {', '.join(GROUPINGS)}.")
        if node.V < 0 or node.V_DEFAULT < 1:
            raise ValueError("TRAINER.DVP_CLS.V must be >= 0 (0: per-dataset default) and V_DEFAULT >= 1.")
        if int(node.KMEANS_N_INIT) < 1:
            raise ValueError(f"TRAINER.DVP_CLS.KMEANS_N_INIT must be >= 1, got {node.KMEANS_N_INIT}.")
        self.check_dvp_cfg(cfg, node.M)
        self.resolve_description_files(cfg, [("attributes", node.ATTRIBUTES)])

    def num_prompts(self):
        return self.num_clusters()

    def build_text(self, classnames):
        node, v = self.vcfg, self.num_clusters()
        sets = self.load_descriptions(classnames, [("attributes", node.ATTRIBUTES)], node.M)
        table = description_table(classnames, sets, num_prompts=v)
        if node.GROUPING == "kmeans":
            labels, record, table.centroids = kmeans_groups(table.encode(self.clip), v, n_init=node.KMEANS_N_INIT,
                                                            random_state=node.GROUPING_SEED, return_centroids=True)
        else:
            labels, record = random_groups(len(table), v, seed=node.GROUPING_SEED)
        table.set_prompts(labels)
        self.grouping_record = record
        print(f"DVP_CLS: {len(table)} descriptions in {v} groups ({record['method']}), sizes {record['sizes']}")
        return table

    def check_other_classes(self, trained, evaluated):
        super().check_other_classes(trained, evaluated)
        if self.vcfg.GROUPING != "kmeans" and set(evaluated) - set(trained):
            raise CheckpointError(f"DVP_CLS with GROUPING {self.vcfg.GROUPING!r} has no cluster centroids to "
                                  f"place the descriptions of classes unseen in training; evaluate it on its "
                                  f"training classes, or train with GROUPING kmeans.")

    def assign_unseen_prompts(self, table, grid, unseen, saved_text_state):
        """Each unseen class's descriptions go to the prompt of the nearest training centroid."""
        centroids = saved_text_state.get("centroids")
        if centroids is None:
            raise CheckpointError("This DVP_CLS checkpoint holds no k-means centroids (written by older code), so "
                                  "descriptions of classes unseen in training cannot be placed in its clusters. "
                                  "Retrain it with this code, or evaluate on its training classes.")
        emb = table.embeddings.view(table.num_classes, table.num_slots, -1)[unseen]
        grid[unseen] = nearest_centroid(emb.reshape(-1, emb.shape[-1]), torch.as_tensor(centroids)).view(
            len(unseen), table.num_slots).to(grid.device)

    def run_record(self):
        record = dict(getattr(self, "grouping_record", {}))
        # after a checkpoint load the assignment may differ from the one computed at build time
        record["sizes"] = self.model.text_table.prompts.bincount(minlength=self.num_clusters()).tolist()
        source = ("TRAINER.DVP_CLS.V" if self.vcfg.V > 0 else
                  "the evaluated checkpoint" if self.checkpoint_v() is not None else "the dataset (V 0)")
        return {"grouping": record, "v": self.num_clusters(), "v_source": source}
