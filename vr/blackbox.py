"""CLIP as a black box: a query interface that answers scores, counts every query, and hides the model.

A black-box trainer sees CLIP only through ``BlackBoxCLIP``:

* ``query(images, texts) -> scores`` of each (already prompted, normalised) image against a text set:
  ``logits`` (logit scale x cosine), ``probs`` (softmax over the text set) or ``topk`` (the k largest
  probabilities, 0 elsewhere), chosen once (``output``);
* ``embed_texts(strings)``: text embeddings, for methods that group their texts (DVP-cls's k-means); every
  string is counted as a text query;
* every answered image is one **image query** (scored against the whole text set: ``len(texts)`` image-text
  pairs); the ``QueryLedger`` counts them per epoch and phase, and refuses a training query that would pass
  the budget (``QueryBudgetSpent``).

No parameter and no gradient is reachable through it: the model lives in a closure (not an attribute), the
object has no ``__dict__`` to look into, any other attribute access is an ``BlackBoxAccessError``, queries
run under ``no_grad`` on detached inputs and return tensors without history. Python offers no true isolation
(a determined caller can walk the interpreter's objects); this makes every ordinary route fail loudly.
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F

OUTPUTS = ("logits", "probs", "topk")
PHASES = ("train", "eval")


class BlackBoxAccessError(AttributeError):
    """A black-box learner tried to reach CLIP's model, parameters or gradients."""


class QueryBudgetSpent(RuntimeError):
    """A training query would pass the query budget."""


class QueryLedger:
    """Image and text queries answered, per phase and per training epoch; the optional training budget.

    Its state (``state_dict``) travels with the zeroth-order optimiser's checkpoint, so a resumed run
    continues the count of the killed one.
    """

    def __init__(self, budget: int = 0):
        self.budget = int(budget)  # 0: no budget
        self.epoch = 0
        self.train_per_epoch: dict[int, int] = {}
        self.eval_images = 0
        self.text_queries = 0
        self.image_text_pairs = 0

    @property
    def train_images(self) -> int:
        return sum(self.train_per_epoch.values())

    def charge(self, images: int, texts: int, phase: str):
        if phase not in PHASES:
            raise ValueError(f"Unknown query phase {phase!r}: use one of {PHASES}.")
        if phase == "train":
            if self.budget and self.train_images + images > self.budget:
                raise QueryBudgetSpent(f"a training query of {images} image(s) would pass the budget of "
                                       f"{self.budget:,} ({self.train_images:,} used)")
            self.train_per_epoch[self.epoch] = self.train_per_epoch.get(self.epoch, 0) + int(images)
        else:
            self.eval_images += int(images)
        self.image_text_pairs += int(images) * int(texts)

    def state_dict(self):
        return {"train_per_epoch": {str(k): v for k, v in self.train_per_epoch.items()},
                "text_queries": self.text_queries, "image_text_pairs": self.image_text_pairs}

    def load_state_dict(self, state):
        self.train_per_epoch = {int(k): int(v) for k, v in state["train_per_epoch"].items()}
        self.text_queries = int(state["text_queries"])
        self.image_text_pairs = int(state["image_text_pairs"])

    def record(self):
        """The JSON record for results.json (training queries per epoch, 1-based, and in total)."""
        return {"train_image_queries": self.train_images,
                "train_image_queries_per_epoch": [self.train_per_epoch.get(e, 0)
                                                  for e in range(max(self.train_per_epoch, default=-1) + 1)],
                "eval_image_queries_this_process": self.eval_images, "text_queries": self.text_queries,
                "image_text_pairs": self.image_text_pairs, "budget": self.budget or None}


class BlackBoxCLIP:
    """Scores of images against texts from a CLIP the caller cannot see (module docstring)."""

    __slots__ = ("_query", "_embed", "ledger", "output", "topk", "image_size", "mean", "std", "name", "device")

    def __init__(self, frozen_clip, ledger: QueryLedger | None = None, output: str = "logits", topk: int = 5):
        if output not in OUTPUTS:
            raise ValueError(f"Unknown black-box output {output!r}: use one of {', '.join(OUTPUTS)}.")
        self.ledger = ledger if ledger is not None else QueryLedger()
        self.output, self.topk = output, int(topk)
        self.image_size, self.mean, self.std = frozen_clip.image_size, frozen_clip.mean, frozen_clip.std
        self.name, self.device = frozen_clip.name, frozen_clip.device
        self._query, self._embed = _closures(frozen_clip, self)

    def __getattr__(self, name):
        raise BlackBoxAccessError(f"The black box exposes only query(), embed_texts(), the ledger and the input "
                                  f"geometry; {name!r} is not reachable (no model, parameters or gradients).")

    def query(self, images: torch.Tensor, texts: Sequence[Sequence[str]], phase: str = "train") -> torch.Tensor:
        """(n, N) scores of ``n`` normalised images against ``N`` text entries (each entry a list of strings,
        embedded as their re-normalised mean). Counted: n image queries."""
        return self._query(images, texts, phase)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, D) normalised text embeddings; counted: one text query per string."""
        return self._embed(texts)

    encode_text = embed_texts  # the name TextTable.encode calls


def _closures(frozen_clip, box):
    """The query functions; the only references to the model are in these closures."""
    cache: dict[tuple, torch.Tensor] = {}

    def embed(texts):
        box.ledger.text_queries += len(texts)
        return frozen_clip.encode_text(list(texts)).detach().clone()

    def entries(texts):
        key = tuple(tuple(t) for t in texts)
        if key not in cache:
            flat: list[str] = [s for t in key for s in t]
            feats = frozen_clip.encode_text(flat)
            box.ledger.text_queries += len(flat)
            parts, start = [], 0
            for t in key:
                parts.append(feats[start:start + len(t)].mean(0))
                start += len(t)
            cache.clear()  # one text set at a time
            cache[key] = F.normalize(torch.stack(parts), dim=-1)
        return cache[key]

    @torch.no_grad()
    def query(images, texts, phase):
        images = images.detach()
        if images.dim() != 4 or images.shape[1:] != (3, box.image_size, box.image_size):
            raise ValueError(f"The black box takes normalised images (n, 3, {box.image_size}, {box.image_size}), "
                             f"got {tuple(images.shape)}.")
        emb = entries(texts)
        box.ledger.charge(images.shape[0], len(texts), phase)
        with torch.autocast(images.device.type, enabled=False):  # queries in fp32 (BlackVIP issue: fp16 noise)
            feats = frozen_clip.encode_image(images.float())
        logits = frozen_clip.capped_logit_scale * feats @ emb.t()
        if box.output == "logits":
            return logits.detach()
        probs = logits.softmax(dim=-1)
        if box.output == "topk":
            k = min(box.topk, probs.shape[-1])
            top = probs.topk(k, dim=-1)
            probs = torch.zeros_like(probs).scatter_(-1, top.indices, top.values)
        return probs.detach()

    return query, embed


def scores_to_logits(scores: torch.Tensor, output: str) -> torch.Tensor:
    """What a learner uses as text logits: the logits, or log-probabilities (clamped: top-k zeros)."""
    return scores if output == "logits" else scores.clamp_min(1e-8).log()
