"""Black-box VR trainers: CLIP answers scores through ``vr.blackbox.BlackBoxCLIP``; a zeroth-order optimiser
(vr/zeroth_order.py) updates the prompt from loss values only, and every query is counted.

A method is a VR trainer (its text table, prompts and aggregation) mixed with ``BlackBoxTrainer``; the
zeroth-order settings live in one shared node, TRAINER.BLACKBOX. The query budget (training image queries)
is checked before each epoch against the epoch's cost, which the schedule fixes in advance
(``epoch_queries``): a run whose next epoch does not fit stops after the last epoch that does, checkpointed,
says so (log and results.json), and a rerun in the same OUTPUT_DIR with a larger budget continues it exactly
(the per-step direction seeds come from (seed, epoch, batch), the momentum and the query count from the
optimiser's checkpoint).
"""
import torch
import torch.nn.functional as F

from engine import distributed
from engine.extend import ensure_node, register_config
from vr.blackbox import OUTPUTS, BlackBoxCLIP, QueryLedger
from vr.blackbox_model import BlackBoxVRModel
from vr.zeroth_order import RGF, SPSAGC

from .base import MODEL_NAME, VRTrainer

OPTIMIZERS = ("rgf", "spsa_gc")
LOSSES = ("ce", "focal")


@register_config
def _blackbox_keys(cfg):
    node = ensure_node(cfg, "TRAINER.BLACKBOX")
    node.OPTIMIZER = ""  # rgf | spsa_gc; "": the method's own (BAR: rgf; the others: spsa_gc)
    node.LOSS = ""  # ce | focal; "": the method's own (BAR: focal)
    node.FOCAL_GAMMA = 2.0
    node.OUTPUT = "logits"  # what the black box returns: logits | probs | topk (log-probabilities are used)
    node.TOPK = 5  # OUTPUT topk: how many probabilities are returned
    node.QUERY_BUDGET = 0  # training image queries (0: no budget); never part of the protocol (resume past it)
    node.MASK_DIRECTIONS = True  # directions only on the prompt entries that change the image (the frame)
    node.Q = 5  # RGF directions per step (BlackVIP's BAR: 5; original BAR: 1)
    node.BETA = 0.01  # RGF smoothing (BlackVIP's BAR: 0.01; original BAR: 0.1)
    node.LR_MIN = 0.1  # RGF step size: (OPTIM.LR - LR_MIN) (1 - t / T)^LR_POWER + LR_MIN, T = DECAY_FRACTION x steps
    node.LR_POWER = 0.9
    node.DECAY_FRACTION = 0.9
    node.C = 0.005  # SPSA-GC perturbation c_k = C / k^GAMMA; step a_k = OPTIM.LR / (k + OFFSET)^ALPHA
    node.GAMMA = 0.1
    node.ALPHA = 0.4
    node.OFFSET = 1.0
    node.MOMENTUM = 0.9  # SPSA-GC gradient-correction beta
    node.SP_AVG = 5  # SPSA-GC two-sided estimates averaged per step (2 x SP_AVG evaluations)


def step_seed(seed, epoch, batch):
    """The seed of one step's directions: the same in a resumed run."""
    return (int(seed) * 1000003 + int(epoch) * 100003 + int(batch)) % (2 ** 62)


def focal_loss(logits, label, gamma):
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, label.view(-1, 1))[:, 0]
    return (-(1.0 - logp.exp()) ** gamma * logp).mean()


class BlackBoxTrainer(VRTrainer):
    """Mixin for a VR trainer: the black box instead of CLIP, a zeroth-order step instead of backprop."""

    BLACK_BOX = True
    NEEDS_TEXT_ENCODER = True  # the black box answers image-text queries (a classifier backbone: not implemented)
    DEFAULT_OPTIMIZER = "spsa_gc"
    DEFAULT_LOSS = "ce"
    CLASS_TRANSFER = ""  # base-to-new: refused (runs/catalogue.py records PER_CLASS as the reason)
    PER_CLASS = ("black-box runs are evaluated on their training classes only: scoring other classes (base-to-new, "
                 "cross-dataset) is not implemented for the black-box trainers")

    @property
    def bcfg(self):
        return self.cfg.TRAINER.BLACKBOX

    def zo_choice(self, cfg=None):
        node = (cfg or self.cfg).TRAINER.BLACKBOX
        return (node.OPTIMIZER or self.DEFAULT_OPTIMIZER), (node.LOSS or self.DEFAULT_LOSS)

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        node = cfg.TRAINER.BLACKBOX
        optimizer, loss = self.zo_choice(cfg)
        for value, allowed, key in ((optimizer, OPTIMIZERS, "OPTIMIZER"), (loss, LOSSES, "LOSS"),
                                    (node.OUTPUT, OUTPUTS, "OUTPUT")):
            if value not in allowed:
                raise ValueError(f"Unknown TRAINER.BLACKBOX.{key} {value!r}: use one of {', '.join(allowed)}.")
        if int(node.QUERY_BUDGET) < 0:
            raise ValueError(f"TRAINER.BLACKBOX.QUERY_BUDGET must be >= 0 (0: none), got {node.QUERY_BUDGET}.")
        if distributed.is_distributed():
            raise ValueError(f"{cfg.TRAINER.NAME} counts queries in one process: run it without torchrun.")

    # ---- the black box replaces CLIP --------------------------------------------------------------
    def build_data_loader(self):
        super().build_data_loader()  # builds the frozen CLIP as self.clip; it is wrapped and dropped here
        node = self.bcfg
        self.ledger = QueryLedger(int(node.QUERY_BUDGET))
        self.clip = BlackBoxCLIP(self.clip, self.ledger, output=node.OUTPUT, topk=int(node.TOPK))

    def effective_precision(self):
        return "fp32"  # queries run in fp32 (vr/blackbox.py)

    def build_model(self):
        classnames = self.dm.dataset.classnames
        table = self.build_text(classnames)
        prompts = self.make_prompts(self.num_prompts())
        aggregation = self.build_aggregation(table)
        self.model = BlackBoxVRModel(self.clip, prompts, table, aggregation).to(self.device)
        self.trainable_params = prompts.num_trainable_entries()
        self.optim = self.build_zo_optimizer(prompts)
        self.sched = self.build_zo_schedule(self.optim)
        self.lr_per_iteration = True  # the step sizes are per step (no per-epoch update_lr)
        self.register_model(MODEL_NAME, self.model, self.optim, self.sched)
        self._precision_note_done = True
        optimizer, loss = self.zo_choice()
        print(f"{self.cfg.TRAINER.NAME}: black-box {self.clip.name} ({self.bcfg.OUTPUT}); {prompts.num_prompts} "
              f"{prompts.kind} prompt(s), {self.trainable_params:,} trainable entries, {len(table):,} texts; "
              f"{optimizer} with {self.optim.evaluations_per_step} evaluations per step, loss {loss}")

    def build_zo_optimizer(self, prompts):
        node, lr = self.bcfg, float(self.cfg.OPTIM.LR)
        params = [p for p in prompts.parameters() if p.requires_grad]  # a padding prompt's delta; a decoder's weights
        masks = None
        if node.MASK_DIRECTIONS and hasattr(prompts, "mask"):
            masks = [prompts.mask.expand_as(prompts.delta).clone()]
        if self.zo_choice()[0] == "rgf":
            return RGF(params, lr, q=int(node.Q), beta=float(node.BETA), masks=masks, ledger=self.ledger)
        return SPSAGC(params, lr, c=float(node.C), alpha=float(node.ALPHA), gamma=float(node.GAMMA),
                      offset=float(node.OFFSET), momentum=float(node.MOMENTUM), sp_avg=int(node.SP_AVG),
                      masks=masks, ledger=self.ledger)

    def build_zo_schedule(self, optim):
        """RGF: BlackVIP's BAR polynomial decay to LR_MIN over DECAY_FRACTION of the steps, then flat.
        SPSA-GC: none (its gains a_k, c_k are part of the estimator)."""
        if not isinstance(optim, RGF):
            return None
        node, a0 = self.bcfg, float(self.cfg.OPTIM.LR)
        total = max(1, int(self.cfg.OPTIM.MAX_EPOCH - self.STATS_EPOCHS) * len(self.train_loader_x))
        horizon, floor = max(1.0, float(node.DECAY_FRACTION) * total), float(node.LR_MIN) / a0

        def factor(t):
            return (1.0 - floor) * (1.0 - min(t, horizon) / horizon) ** float(node.LR_POWER) + floor
        return torch.optim.lr_scheduler.LambdaLR(optim, factor)

    # ---- queries the schedule implies -------------------------------------------------------------
    def batch_sizes(self):
        n, b = len(self.train_loader_x.dataset), int(self.train_loader_x.batch_size)
        return [b] * (n // b) + ([n % b] if n % b else [])

    def epoch_queries(self, epoch):
        """Training image queries of ``epoch``: images x prompts x evaluations per step (statistics epoch: 1)."""
        per_image = self.num_prompts() * (self.optim.evaluations_per_step if epoch >= self.STATS_EPOCHS else 1)
        return per_image * sum(self.batch_sizes())

    # ---- training ---------------------------------------------------------------------------------
    def before_train(self):
        super().before_train()  # resumes: the optimiser's checkpoint restores the ledger
        self.budget_stop = None
        budget, used, stop = self.ledger.budget, self.ledger.train_images, self.start_epoch
        while stop < self.max_epoch and (not budget or used + self.epoch_queries(stop) <= budget):
            used += self.epoch_queries(stop)
            stop += 1
        if stop < self.max_epoch:
            self.budget_stop = {"epochs_done": stop, "epochs_configured": int(self.max_epoch),
                                "next_epoch_queries": self.epoch_queries(stop)}
            print(f"Query budget: {self.ledger.train_images:,} of {budget:,} training queries used before epoch "
                  f"{self.start_epoch + 1}; epochs up to {stop} fit, epoch {stop + 1} needs "
                  f"{self.epoch_queries(stop):,} more. The run stops after epoch {stop} (checkpointed); raise "
                  f"TRAINER.BLACKBOX.QUERY_BUDGET and rerun with the same OUTPUT_DIR and --overwrite to continue it.")
            self.max_epoch = stop

    def before_epoch(self):
        self.ledger.epoch = self.epoch
        super().before_epoch()

    def forward_backward(self, batch):
        with torch.no_grad():
            if not self.updates_this_epoch():  # DVP's statistics epoch: one query per image and prompt
                return super().forward_backward(batch)
            image, label = self.parse_batch_train(batch)[:2]
            seen = {}

            def closure():
                logits, z = self.model.forward_with_descriptions(image)
                seen.setdefault("first", (logits, z))
                return self.loss_of(logits, label)

            generator = torch.Generator().manual_seed(step_seed(self.sampling_seed(), self.epoch, self.batch_idx))
            loss = self.optim.step(closure, generator)
            logits, z = seen["first"]  # RGF: at w; SPSA-GC: at w + c_k Delta (first draw)
            if self.counts_training_forwards():
                self.observe(batch, z, label)
            if self.sched is not None:
                self.sched.step()
        acc = (logits.argmax(dim=1) == label).float().mean().item() * 100.0
        return {"loss": loss, "acc": acc}

    def loss_of(self, logits, label):
        if self.zo_choice()[1] == "focal":
            return focal_loss(logits, label, float(self.bcfg.FOCAL_GAMMA))
        return F.cross_entropy(logits.float(), label)

    def extra_results(self):
        out = super().extra_results()
        optimizer, loss = self.zo_choice()
        record = self.ledger.record()
        stop = getattr(self, "budget_stop", None)
        record.update({"optimizer": optimizer, "loss": loss, "output": self.bcfg.OUTPUT,
                       "evaluations_per_step": self.optim.evaluations_per_step,
                       "directions_dimension": self.optim.dimension, "steps": self.optim.steps_done,
                       "stopped_by_budget": stop is not None, "budget_stop": stop})
        out["black_box"] = record
        return out
