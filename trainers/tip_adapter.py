"""TipAdapter and TipAdapterF (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot
Classification", ECCV 2022): a key-value cache model of the few-shot training set beside zero-shot CLIP.

Cache: keys F = the normalised mean of AUGMENT_EPOCH augmented (RandomResizedCrop 0.5-1, flip) unnormalised
CLIP features of each training image; values L = one-hot labels. With f the normalised test feature:

    A = exp(-beta (1 - f F^T)),   logits = 100 f W^T + alpha A L

(100 is the paper code's fixed scale; W = the normalised mean of the normalised template embeddings:
TEMPLATES "tip" = the paper's 7 templates on ImageNet, CoOp's zero-shot template elsewhere).
TipAdapter trains nothing; TipAdapterF learns the keys (a bias-free linear layer initialised to F, not
re-normalised) with AdamW and a per-iteration cosine schedule, alpha and beta fixed at INIT_ALPHA / INIT_BETA.

beta / alpha are then searched as the paper's ``search_hp``: beta outer, alpha inner over
0.1 + i (S - 0.1) / n, only a strictly better accuracy replacing the best; but on the VALIDATION split
(HP_SELECTION "val"). HP_SELECTION "test" runs the paper's ImageNet-style search on the test set and labels
the run test-selected in results.json; "defaults" keeps INIT_BETA / INIT_ALPHA. Without validation images
the run keeps the defaults and says so. With DATASET_DEFAULTS (the default) the paper's per-dataset init
alpha and search scales (PAPER_SETTINGS) replace INIT_ALPHA / SEARCH_SCALE on its 11 datasets, printed and
recorded in results.json; set it False to use the configured values everywhere.
Deliberate differences: TipAdapterF tests the last epoch (the paper
keeps the best-TEST epoch, Tip-Adapter issue #11) and reports the accuracy after the search only; CLIP runs
in fp32; the K-shot set and val split are the toolkit's (CoOp's splits), not Tip-Adapter's own draw.
"""
import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from engine.schedulers import per_iteration_cosine

from .features import FeatureModel, FeatureTrainer, encode_images
from .hp_search import accuracy, check_hp_selection, grid_search, hp_record, tip_grid

CLIP_SCALE = 100.0  # Tip-Adapter's fixed logit scale of the zero-shot term

# The paper's per-dataset settings (Tip-Adapter configs/*.yaml): init alpha, (S_beta, S_alpha), F epochs.
# Used when TRAINER.<NODE>.DATASET_DEFAULTS is True (printed and recorded); init beta is 1 everywhere.
PAPER_SETTINGS = {
    "ImageNet": (1.17, (7, 3), 20), "Caltech101": (3, (12, 5), 20), "DescribableTextures": (2, (13, 13), 20),
    "EuroSAT": (2, (12, 10), 100), "StanfordCars": (3, (20, 10), 20), "UCF101": (3, (7, 3), 20),
    "Food101": (1.17, (10, 10), 20), "FGVCAircraft": (5, (30, 30), 20), "OxfordFlowers": (10, (50, 50), 20),
    "OxfordPets": (1.17, (7, 3), 20), "SUN397": (1.17, (12, 10), 20),
}


def _tip_keys(node):
    node.AUGMENT_EPOCH = 10  # augmented passes averaged into the cache keys
    node.INIT_BETA = 1.0
    node.INIT_ALPHA = 3.0  # used (with SEARCH_SCALE) off the paper's datasets or with DATASET_DEFAULTS False
    node.SEARCH_SCALE = [12.0, 5.0]  # (S_beta, S_alpha): search end points (excluded)
    node.SEARCH_STEP = [200, 20]  # (n_beta, n_alpha)
    node.HP_SELECTION = "val"  # val | test (the paper's test-set search, labelled) | defaults (INIT_*)
    node.TEMPLATES = "tip"  # Tip-Adapter's: the 7-template ensemble on ImageNet, CoOp's template elsewhere
    node.DATASET_DEFAULTS = True  # the paper's INIT_ALPHA / SEARCH_SCALE for its 11 datasets (PAPER_SETTINGS)


@register_config
def _tip_adapter_keys(cfg):
    _tip_keys(ensure_node(cfg, "TRAINER.TIPADAPTER"))
    node = ensure_node(cfg, "TRAINER.TIPADAPTERF")
    _tip_keys(node)
    node.EPS = 1e-4  # AdamW eps of the paper's code


class TipCache(nn.Module):
    """Zero-shot text classifier + key-value cache; keys are a Parameter when they are learned.

    The state_dict holds the keys, values, alpha and beta (the text weights are rebuilt from CLIP); loading
    resizes the cache to the checkpoint's number of entries.
    """

    def __init__(self, text, alpha, beta, learn_keys=False):
        super().__init__()
        num_classes, dim = text.shape
        self.register_buffer("text", text, persistent=False)
        keys = torch.zeros(0, dim, device=text.device)
        if learn_keys:
            self.keys = nn.Parameter(keys)
        else:
            self.register_buffer("keys", keys)
        self.register_buffer("values", torch.zeros(0, num_classes, device=text.device))
        # float64 scalars: the chosen values are stored exactly (0-dim tensors do not promote the logits)
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64, device=text.device))
        self.register_buffer("beta", torch.tensor(float(beta), dtype=torch.float64, device=text.device))

    def set_cache(self, keys, values):
        self.keys.data = keys.to(self.text.device).float().contiguous()
        self.values = values.to(self.text.device).float()

    def set_hyper(self, alpha, beta):
        self.alpha.fill_(float(alpha))
        self.beta.fill_(float(beta))

    def clip_logits(self, f):
        return CLIP_SCALE * f @ self.text.t()

    def affinity(self, f):
        return f @ self.keys.t()

    @staticmethod
    def cache_logits(affinity, values, beta):
        return torch.exp(-beta * (1.0 - affinity)) @ values

    def forward(self, features):
        f = F.normalize(features, dim=-1)
        return self.clip_logits(f) + self.alpha * self.cache_logits(self.affinity(f), self.values, self.beta)

    def explain(self, features, labels, classnames=None, top=5):
        """Why each image scores ``labels[b]``: its ``top`` cache neighbours (the keys of highest affinity f.F_n),
        each with its training image (``cache_images``, None when the checkpoint predates them), label,
        affinity, weight exp(-beta (1 - affinity)) and part of the class logit, alpha x weight x L[n, label]
        (0 for a neighbour of another class). The class logit = clip_logit + cache_logit, the sum over all keys."""
        f = F.normalize(features.float(), dim=-1)
        affinity = self.affinity(f)
        weight = torch.exp(-self.beta * (1.0 - affinity.double())).float()
        clip = self.clip_logits(f)
        key_labels = self.values.argmax(dim=1).tolist()
        paths = getattr(self, "cache_images", None)
        k = max(0, min(int(top), affinity.shape[1]))
        alpha = float(self.alpha)
        out = []
        for b, label in enumerate(int(v) for v in labels):
            share = alpha * weight[b] * self.values[:, label]
            order = torch.sort(affinity[b], descending=True, stable=True).indices[:k].tolist()
            neighbours = [{"rank": r, "index": n, "image": paths[n] if paths else None, "label": key_labels[n],
                           "class": classnames[key_labels[n]] if classnames else None,
                           "affinity": float(affinity[b, n]), "weight": float(weight[b, n]),
                           "contribution": float(share[n])} for r, n in enumerate(order, 1)]
            record = {"kind": "cache_neighbours", "label": label, "alpha": alpha, "beta": float(self.beta),
                      "clip_logit": float(clip[b, label]), "cache_logit": float(share.sum()),
                      "class_logit": float(clip[b, label] + share.sum()), "cache_entries": int(affinity.shape[1]),
                      "images_known": bool(paths), "neighbours": neighbours}
            if not paths:
                why = getattr(self, "cache_images_note", "") or "made before they were stored"
                record["note"] = (f"the checkpoint does not record the cache's training images ({why}): neighbours "
                                  "are given by cache index and label; retrain to see paths")
            out.append(record)
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("keys", "values"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                getattr(self, name).data = torch.zeros_like(incoming, device=self.text.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class TipModel(FeatureModel):
    """Frozen CLIP + the cache; ``explain`` gives predict.py the cache neighbours of each image."""

    @torch.no_grad()
    def explain(self, images, labels, classnames=None, top=5):
        """One JSON-able record per image (TipCache.explain) for class ``labels[b]``."""
        return self.head.explain(encode_images(self.encoder, images), labels, classnames, top)


def search_alpha_beta(clip_logits, affinity, values, labels, betas, alphas):
    """Tip-Adapter's search (beta outer, alpha inner, strict improvement). Returns (beta, alpha, accuracy)."""
    cache = {}

    def score(point):
        beta, alpha = point
        if beta not in cache:
            cache.clear()
            cache[beta] = TipCache.cache_logits(affinity, values, beta)
        return accuracy(clip_logits + alpha * cache[beta], labels)

    (beta, alpha), best = grid_search(score, [(b, a) for b in betas for a in alphas])
    return float(beta), float(alpha), best


class _TipBase(FeatureTrainer):
    LEARN_KEYS = False
    HEAD_KIND = "tip_cache"
    MODEL_CLASS = TipModel
    PER_CLASS = "the cache's values are one-hot labels of the training classes (its keys are training images)"

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER[self.NODE]
        check_hp_selection(node.HP_SELECTION, f"TRAINER.{self.NODE}.HP_SELECTION")
        if int(node.AUGMENT_EPOCH) < 1:
            raise ValueError(f"TRAINER.{self.NODE}.AUGMENT_EPOCH must be at least 1 (got {node.AUGMENT_EPOCH}).")
        if len(node.SEARCH_SCALE) != 2 or len(node.SEARCH_STEP) != 2 or min(node.SEARCH_STEP) < 1:
            raise ValueError(f"TRAINER.{self.NODE}.SEARCH_SCALE and SEARCH_STEP are (beta, alpha) pairs, steps >= 1.")

    def settings(self):
        """(init alpha, (S_beta, S_alpha)) of this run: the paper's for its datasets when DATASET_DEFAULTS."""
        node = self.node
        paper = PAPER_SETTINGS.get(self.cfg.DATASET.NAME) if node.DATASET_DEFAULTS else None
        if paper is None:
            return float(node.INIT_ALPHA), tuple(float(v) for v in node.SEARCH_SCALE), "config"
        return float(paper[0]), tuple(float(v) for v in paper[1]), "paper (DATASET_DEFAULTS)"

    def build_data_loader(self):
        super().build_data_loader()
        self.init_alpha, self.search_scale, source = self.settings()
        print(f"{self.cfg.TRAINER.NAME}: init alpha {self.init_alpha}, init beta {self.node.INIT_BETA}, search scale "
              f"(beta, alpha) {self.search_scale}, from the {source} settings")
        paper = PAPER_SETTINGS.get(self.cfg.DATASET.NAME)
        if paper is not None and self.TRAINS and not self.FITTED and paper[2] != self.cfg.OPTIM.MAX_EPOCH:
            print(f"Note: the paper trains {self.cfg.TRAINER.NAME} for {paper[2]} epochs on {self.cfg.DATASET.NAME}; "
                  f"this run uses OPTIM.MAX_EPOCH = {self.cfg.OPTIM.MAX_EPOCH}.")
        self.selection = self.hp_selection(
            f", so beta / alpha are not searched: {self.cfg.TRAINER.NAME} keeps the initial beta = "
            f"{self.node.INIT_BETA} and alpha = {self.init_alpha} (recorded in results.json as hp_selection "
            f"'defaults').")

    def build_head(self, classnames):
        self.record = {}
        return TipCache(self.text_weights(), self.init_alpha, self.node.INIT_BETA, learn_keys=self.LEARN_KEYS)

    def build_cache(self):
        """Keys from AUGMENT_EPOCH augmented passes over the K-shot set; one-hot values."""
        keys, labels = self.features("train", "cache", epochs=int(self.node.AUGMENT_EPOCH), normalise=True)
        self.model.head.set_cache(keys, F.one_hot(labels, self.num_classes))
        self.model.head.cache_images = self.cache_images()
        print(f"Cache model: {keys.shape[0]} entries x {keys.shape[1]} dims ({self.node.AUGMENT_EPOCH} augmented "
              f"passes), {self.num_classes} classes")

    @torch.no_grad()
    def search(self):
        """Choose beta / alpha on the configured split and set them in the head."""
        head, node = self.model.head, self.node
        chosen = {"init_beta": float(node.INIT_BETA), "init_alpha": self.init_alpha,
                  "search_scale": list(self.search_scale), "search_step": [int(v) for v in node.SEARCH_STEP]}
        if self.selection == "defaults":
            beta, alpha = float(node.INIT_BETA), self.init_alpha
        else:
            feats, labels = self.features(self.selection, normalise=True)
            betas = tip_grid(self.search_scale[0], node.SEARCH_STEP[0])
            alphas = tip_grid(self.search_scale[1], node.SEARCH_STEP[1])
            beta, alpha, best = search_alpha_beta(head.clip_logits(feats), head.affinity(feats), head.values, labels,
                                                  betas, alphas)
            chosen["search_accuracy"] = best
            print(f"{self.cfg.TRAINER.NAME}: beta = {beta:.4f}, alpha = {alpha:.4f} chosen on the {self.selection} "
                  f"split ({len(labels)} images, accuracy {best:.2f}%)")
        head.set_hyper(alpha, beta)
        self.record = hp_record(self.selection, self.val_is_test, {"beta": beta, "alpha": alpha, **chosen})
        self.record["cache_entries"] = int(head.keys.shape[0])

    def cache_images(self):
        """The training image of each cache entry, in key order (the unshuffled passes over train_x)."""
        return [item.impath for item in self.dm.dataset.train_x]

    def run_identity(self):
        identity = super().run_identity()
        head = getattr(getattr(self, "model", None), "head", None)
        if getattr(head, "cache_images", None):  # in the checkpoint: predict.py names each neighbour's image
            identity["cache_images"] = list(head.cache_images)
        return identity

    def load_model(self, directory, epoch=None):
        super().load_model(directory, epoch)
        if not directory:
            return
        head = self.model.head  # the loaded checkpoint's images; None from one made before they were stored
        images = (getattr(self, "loaded_run", None) or {}).get("cache_images")
        head.cache_images, head.cache_images_note = images, ""
        if images and len(images) != head.keys.shape[0]:
            head.cache_images = None
            head.cache_images_note = f"it lists {len(images)} images for {head.keys.shape[0]} cache entries"
            print(f"WARNING: the checkpoint's cache image list does not match its cache: {head.cache_images_note}; "
                  f"the explanations name cache entries by index.")

    def method_record(self):
        """The search's record; after --eval-only, the beta / alpha loaded from the checkpoint."""
        head = self.model.head
        loaded = {"beta": float(head.beta), "alpha": float(head.alpha), "cache_entries": int(head.keys.shape[0])}
        return {**loaded, **self.record} if self.record else {"hp_selection": "loaded from the checkpoint", **loaded}


@TRAINER_REGISTRY.register()
class TipAdapter(_TipBase):
    """Training-free cache model; the checkpoint holds the cache and the chosen beta / alpha."""

    NODE = "TIPADAPTER"
    FITTED = True

    def fit(self):
        self.build_cache()
        self.search()


@TRAINER_REGISTRY.register()
class TipAdapterF(_TipBase):
    """Tip-Adapter with the cache keys fine-tuned (AdamW, cosine per iteration), then the beta / alpha search."""

    NODE = "TIPADAPTERF"
    LEARN_KEYS = True
    HEAD_KIND = "tip_cache_learned_keys"
    TRAIN_TRANSFORM = "cache"

    def check_method_cfg(self, cfg):
        super().check_method_cfg(cfg)
        if cfg.OPTIM.NAME != "adamw":
            raise ValueError(f"TipAdapterF trains with AdamW (the paper's optimiser, eps TRAINER.TIPADAPTERF.EPS), but "
                             f'OPTIM.NAME is "{cfg.OPTIM.NAME}". Set OPTIM.NAME adamw (configs/trainers/TipAdapterF/).')

    def build_optimizer_and_scheduler(self, head):
        optim = torch.optim.AdamW([head.keys], lr=self.cfg.OPTIM.LR, eps=float(self.node.EPS),
                                  weight_decay=self.cfg.OPTIM.WEIGHT_DECAY)
        return optim, per_iteration_cosine(optim, self.cfg.OPTIM.MAX_EPOCH * len(self.train_loader_x))

    def count_trainable_params(self, head):
        return len(self.dm.dataset.train_x) * head.text.shape[1]  # the keys, one row per training image

    def before_train(self):
        super().before_train()  # resumes the learned keys when a checkpoint exists
        if self.start_epoch == 0:
            self.build_cache()
        else:  # resumed keys: the same protocol, so the same K-shot images in the same order
            self.model.head.cache_images = self.cache_images()

    def forward_backward(self, batch):
        image, label = batch["img"].to(self.device), batch["label"].to(self.device)
        logits = self.model(image)
        loss = F.cross_entropy(logits, label)
        self.model_backward_and_update(loss)
        self.update_lr()
        return {"loss": loss.item(), "acc": accuracy(logits, label)}

    def after_train(self):
        self.search()
        self.save_model(self.max_epoch - 1, self.output_dir)  # the last checkpoint holds the chosen beta / alpha
        super().after_train()
