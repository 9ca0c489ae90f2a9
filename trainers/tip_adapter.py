"""TipAdapter and TipAdapterF (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot
Classification", ECCV 2022): a key-value cache model of the few-shot training set beside zero-shot CLIP.

Cache: keys F = the normalised mean of AUGMENT_EPOCH augmented (RandomResizedCrop 0.5-1, flip) unnormalised
CLIP features of each training image; values L = one-hot labels. With f the normalised test feature:

    A = exp(-beta (1 - f F^T)),   logits = 100 f W^T + alpha A L

(100 is the paper code's fixed scale; W = normalised text weights from CoOp's zero-shot template).
TipAdapter trains nothing; TipAdapterF learns the keys (a bias-free linear layer initialised to F, not
re-normalised) with AdamW and a per-iteration cosine schedule, alpha and beta fixed at INIT_ALPHA / INIT_BETA.

beta / alpha are then searched as the paper's ``search_hp``: beta outer, alpha inner over
0.1 + i (S - 0.1) / n, only a strictly better accuracy replacing the best; but on the VALIDATION split
(HP_SELECTION "val"). HP_SELECTION "test" runs the paper's ImageNet-style search on the test set and labels
the run test-selected in results.json; "defaults" keeps INIT_BETA / INIT_ALPHA. Without validation images
the run keeps the defaults and says so. Deliberate differences: TipAdapterF tests the last epoch (the paper
keeps the best-TEST epoch, Tip-Adapter issue #11) and reports the accuracy after the search only; CLIP runs
in fp32; the K-shot set and val split are the toolkit's (CoOp's splits), not Tip-Adapter's own draw.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from engine.schedulers import per_iteration_cosine

from .features import FeatureTrainer, accuracy, check_hp_selection, grid_search, hp_record, tip_grid

CLIP_SCALE = 100.0  # Tip-Adapter's fixed logit scale of the zero-shot term


def _tip_keys(node):
    node.AUGMENT_EPOCH = 10  # augmented passes averaged into the cache keys
    node.INIT_BETA = 1.0
    node.INIT_ALPHA = 3.0  # per dataset in the paper's configs (configs/trainers/TipAdapter/*.yaml)
    node.SEARCH_SCALE = [12.0, 5.0]  # (S_beta, S_alpha): search end points (excluded)
    node.SEARCH_STEP = [200, 20]  # (n_beta, n_alpha)
    node.HP_SELECTION = "val"  # val | test (the paper's test-set search, labelled) | defaults (INIT_*)
    node.TEMPLATES = "coop"  # text classifier: CoOp's per-dataset zero-shot template


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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("keys", "values"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                getattr(self, name).data = torch.zeros_like(incoming, device=self.text.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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

    def check_method_cfg(self, cfg):
        node = cfg.TRAINER[self.NODE]
        check_hp_selection(node.HP_SELECTION, f"TRAINER.{self.NODE}.HP_SELECTION")
        if int(node.AUGMENT_EPOCH) < 1:
            raise ValueError(f"TRAINER.{self.NODE}.AUGMENT_EPOCH must be at least 1 (got {node.AUGMENT_EPOCH}).")
        if len(node.SEARCH_SCALE) != 2 or len(node.SEARCH_STEP) != 2 or min(node.SEARCH_STEP) < 1:
            raise ValueError(f"TRAINER.{self.NODE}.SEARCH_SCALE and SEARCH_STEP are (beta, alpha) pairs, steps >= 1.")

    def build_data_loader(self):
        super().build_data_loader()
        self.selection = str(self.node.HP_SELECTION)
        if self.selection == "val" and not self.dm.dataset.val:
            print(f"Note: no validation images, so beta / alpha are not searched: {self.cfg.TRAINER.NAME} keeps the "
                  f"configured INIT_BETA = {self.node.INIT_BETA} and INIT_ALPHA = {self.node.INIT_ALPHA} "
                  f"(recorded in results.json as hp_selection 'defaults').")
            self.selection = "defaults"

    def build_head(self, classnames):
        self.record = {}
        return TipCache(self.text_weights(), self.node.INIT_ALPHA, self.node.INIT_BETA, learn_keys=self.LEARN_KEYS)

    def build_cache(self):
        """Keys from AUGMENT_EPOCH augmented passes over the K-shot set; one-hot values."""
        keys, labels = self.features("train", "cache", epochs=int(self.node.AUGMENT_EPOCH), normalise=True)
        self.model.head.set_cache(keys, F.one_hot(labels, self.num_classes))
        print(f"Cache model: {keys.shape[0]} entries x {keys.shape[1]} dims ({self.node.AUGMENT_EPOCH} augmented "
              f"passes), {self.num_classes} classes")

    @torch.no_grad()
    def search(self):
        """Choose beta / alpha on the configured split and set them in the head."""
        head, node = self.model.head, self.node
        chosen = {"init_beta": float(node.INIT_BETA), "init_alpha": float(node.INIT_ALPHA)}
        if self.selection == "defaults":
            beta, alpha = float(node.INIT_BETA), float(node.INIT_ALPHA)
        else:
            feats, labels = self.features(self.selection, normalise=True)
            betas, alphas = tip_grid(node.SEARCH_SCALE[0], node.SEARCH_STEP[0]), tip_grid(node.SEARCH_SCALE[1],
                                                                                          node.SEARCH_STEP[1])
            beta, alpha, best = search_alpha_beta(head.clip_logits(feats), head.affinity(feats), head.values, labels,
                                                  betas, alphas)
            chosen["search_accuracy"] = best
            print(f"{self.cfg.TRAINER.NAME}: beta = {beta:.4f}, alpha = {alpha:.4f} chosen on the {self.selection} "
                  f"split ({len(labels)} images, accuracy {best:.2f}%)")
        head.set_hyper(alpha, beta)
        self.record = hp_record(self.selection, self.val_is_test, {"beta": beta, "alpha": alpha, **chosen})
        self.record["cache_entries"] = int(head.keys.shape[0])

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
    TRAIN_TRANSFORM = "cache"

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
