"""Text side of reprogramming: which texts are embedded, and which prompt scores each of them.

A ``TextTable`` is a list of entries, each with a class, a slot (its position among the class's texts)
and the index of the visual prompt that scores it. Two layouts:

* class blocks (``num_slots`` = M' > 0): every class has M' entries and entry n sits at
  ``class * M' + slot``, so the text logits reshape to (B, C, M') without scatter (templates,
  descriptions: the aggregation reads each class's own block);
* free (``num_slots`` = 0, ``TextTable.free``): N entries in any order, each naming the class it was
  written for (or -1 for none); the text logits stay (B, N) and the aggregation maps them to classes
  (label mapping: source texts counted onto target classes, vr/mapping.py).

An entry holds one or more strings whose normalised embeddings are averaged and re-normalised
(templates); a description or source-text entry holds one string.

The strings travel with checkpoints (as module "extra state": lists of strings), the embeddings do not.
Loading never replaces the strings silently: a checkpoint whose strings differ is an error unless the
caller has verified that it was trained on the same classes (``adopt_checkpoint_texts``, set by the
trainer's load_model from the checkpoint's run record); the adopted strings are then re-encoded.
DVP-cls also keeps its k-means ``centroids`` here (to place other classes' descriptions).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from .clip import FrozenCLIP

# The single template of the VR papers (VP, AR, AttrVR reference code).
VR_TEMPLATE = "This is a photo of {}."

TEMPLATE_CHOICES = ("vr", "coop")


def class_text(classname: str) -> str:
    """Class name as it appears in a template: underscores become spaces."""
    return classname.replace("_", " ")


def templates_for(dataset_name: str, choice: str = "vr") -> list[str]:
    """Templates for a dataset: "vr" -> the VR papers' single template; "coop" -> CoOp's per-dataset one
    (its loader's ``zeroshot_template``, see datasets/catalog.py)."""
    choice = str(choice).lower()
    if choice == "vr":
        return [VR_TEMPLATE]
    if choice == "coop":
        from datasets.catalog import zeroshot_template

        return [zeroshot_template(dataset_name)]
    raise ValueError(f'Unknown template choice "{choice}" (TRAINER.<NAME>.TEMPLATES). Use one of: '
                     f"{', '.join(TEMPLATE_CHOICES)}.")


class TextTable(nn.Module):
    """Text entries with (class, slot, prompt) indices and their cached CLIP embeddings."""

    def __init__(self, texts: Sequence[Sequence[str]], classes: Sequence[int], slots: Sequence[int],
                 prompts: Sequence[int], num_classes: int, num_slots: int, num_prompts: int = 1):
        super().__init__()
        self.num_classes, self.num_slots, self.num_prompts = int(num_classes), int(num_slots), int(num_prompts)
        self.texts: list[list[str]] = [list(t) for t in texts]
        classes = torch.as_tensor(list(classes), dtype=torch.long)
        slots = torch.as_tensor(list(slots), dtype=torch.long)
        n = self.num_classes * self.num_slots if self.blocked else len(self.texts)
        if len(self.texts) != n or classes.numel() != n or slots.numel() != n:
            raise ValueError(f"A text table for {num_classes} classes x {num_slots} slots needs {n} entries, "
                             f"got {len(self.texts)}." if self.blocked else
                             f"A free text table needs a class and a slot for each of its {n} entries, got "
                             f"{classes.numel()} and {slots.numel()}.")
        if n == 0:
            raise ValueError("A text table needs at least one entry.")
        if self.blocked and not torch.equal(classes * self.num_slots + slots, torch.arange(n)):
            raise ValueError("Text table entries must be ordered by class, then slot.")
        if not self.blocked and (classes.min() < -1 or classes.max() >= self.num_classes):
            raise ValueError(f"The class of a free text table entry is -1 (none) or in [0, {self.num_classes}).")
        if any(len(t) == 0 for t in self.texts):
            raise ValueError("Every text table entry needs at least one string.")
        self.register_buffer("classes", classes)
        self.register_buffer("slots", slots)
        self.register_buffer("prompts", torch.zeros(n, dtype=torch.long))
        self.register_buffer("embeddings", torch.empty(0), persistent=False)
        self.set_prompts(prompts)
        self.stale = True  # embeddings do not match ``texts`` yet
        self.centroids: torch.Tensor | None = None  # DVP-cls: (v, D) k-means centroids of the training texts
        self.adopt_checkpoint_texts = False  # True only while loading a checkpoint verified to be of these classes

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def free(cls, texts: Sequence[Sequence[str]], named_classes: Sequence[int], num_classes: int,
             prompts: Sequence[int] | None = None, num_prompts: int = 1) -> TextTable:
        """A table in the free layout: entry n names class ``named_classes[n]`` (-1: none); its slot is its
        position among the entries naming the same class. All entries are scored by prompt 0 by default."""
        named = [int(c) for c in named_classes]
        seen: dict = {}
        slots = []
        for c in named:
            slots.append(seen.get(c, 0))
            seen[c] = slots[-1] + 1
        prompts = [0] * len(named) if prompts is None else prompts
        return cls(texts, named, slots, prompts, num_classes, 0, num_prompts)

    @property
    def blocked(self) -> bool:
        """True for the class-block layout (text logits (B, C, M')), False for the free one ((B, N))."""
        return self.num_slots > 0

    def layout(self) -> str:
        """The layout in words (logs, errors)."""
        if self.blocked:
            return f"{self.num_classes} classes x {self.num_slots} texts"
        return f"free layout: {len(self)} texts for {self.num_classes} classes"

    def logit_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of the text logits of a batch: (B, C, M') for class blocks, (B, N) for the free layout."""
        return (batch, self.num_classes, self.num_slots) if self.blocked else (batch, len(self))

    def entry_text(self, n: int) -> str:
        """Entry n as one string (its strings joined by " | ")."""
        return " | ".join(self.texts[n])

    def first_entries(self) -> list[int]:
        """For each class, the first entry naming it; a class no entry names gets the first entry not yet
        taken (a label mapping's starting point: each class scored by a text of its own name)."""
        first = {}
        for n, c in enumerate(self.classes.tolist()):
            if c >= 0:
                first.setdefault(c, n)
        taken = set(first.values())
        free = iter(n for n in range(len(self)) if n not in taken)
        return [first[c] if c in first else next(free) for c in range(self.num_classes)]

    def class_block(self, c: int) -> torch.Tensor:
        """Entry indices of class c's block (class-block layout only)."""
        self._need_blocks("class blocks")
        return torch.arange(c * self.num_slots, (c + 1) * self.num_slots)

    def _need_blocks(self, what: str):
        if not self.blocked:
            raise ValueError(f"The {what} of a text table exist only in the class-block layout; this table has "
                             f"{self.layout()}.")

    def set_prompts(self, prompts: Sequence[int]):
        """Assign each entry to a visual prompt (cause index, cluster label, ...)."""
        prompts = torch.as_tensor(prompts, dtype=torch.long).reshape(-1).to(self.prompts.device)
        if prompts.numel() != len(self.texts):
            raise ValueError(f"Got {prompts.numel()} prompt indices for {len(self.texts)} texts.")
        if prompts.numel() and (prompts.min() < 0 or prompts.max() >= self.num_prompts):
            raise ValueError(f"Prompt indices must lie in [0, {self.num_prompts}).")
        self.prompts.copy_(prompts)

    def prompt_grid(self) -> torch.Tensor:
        """(C, M') prompt index of every description slot (class-block layout)."""
        self._need_blocks("prompt grid")
        return self.prompts.view(self.num_classes, self.num_slots)

    def texts_of_class(self, c: int) -> list[str]:
        """Class c's block of texts (class-block layout)."""
        return [self.entry_text(int(n)) for n in self.class_block(c)]

    def listing(self, classnames: Sequence[str]) -> dict[str, list[dict[str, Any]]] | list[dict[str, Any]]:
        """The entries as JSON-able records (run files): {class: [{slot, prompt, text}]} for class blocks, a
        list of {class it names (or None), prompt, text} for the free layout."""
        def record(n: int, **where: Any) -> dict[str, Any]:
            return {**where, "prompt": int(self.prompts[n]), "text": self.entry_text(n)}

        if self.blocked:
            return {c: [record(int(n), slot=j) for j, n in enumerate(self.class_block(i))]
                    for i, c in enumerate(classnames)}
        return [record(n, names_class=classnames[int(c)] if c >= 0 else None) for n, c in enumerate(self.classes)]

    @torch.no_grad()
    def encode(self, encoder: FrozenCLIP) -> torch.Tensor:
        """Embed every entry with the frozen CLIP (mean over an entry's strings, re-normalised)."""
        flat = [s for t in self.texts for s in t]
        feats = encoder.encode_text(flat)
        if all(len(t) == 1 for t in self.texts):
            emb = feats
        else:
            parts, start = [], 0
            for t in self.texts:
                parts.append(feats[start:start + len(t)].mean(0))
                start += len(t)
            emb = F.normalize(torch.stack(parts), dim=-1)
        self.embeddings = emb.to(self.prompts.device)
        self.stale = False
        return self.embeddings

    @classmethod
    def from_state(cls, state: Mapping[str, Any], prefix: str = "text_table.") -> TextTable:
        """The table a model state_dict (e.g. a checkpoint's) holds, rebuilt without CLIP (not encoded)."""
        extra = state.get(prefix + "_extra_state")
        if extra is None:
            raise ValueError(f"The checkpoint holds no text table ({prefix}_extra_state).")
        return cls(extra["texts"], state[prefix + "classes"].tolist(), state[prefix + "slots"].tolist(),
                   state[prefix + "prompts"].tolist(), extra["num_classes"], extra["num_slots"],
                   extra["num_prompts"])

    def get_extra_state(self) -> dict[str, Any]:
        state = {"texts": self.texts, "num_classes": self.num_classes, "num_slots": self.num_slots,
                 "num_prompts": self.num_prompts}
        if self.centroids is not None:
            state["centroids"] = self.centroids.detach().cpu()
        return state

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        shape = (state["num_classes"], state["num_slots"], state["num_prompts"])
        if shape != (self.num_classes, self.num_slots, self.num_prompts):
            raise ValueError(
                f"The checkpoint's text table has (classes, slots, prompts) = {shape}, this model has "
                f"{(self.num_classes, self.num_slots, self.num_prompts)}. Evaluate with the config the run "
                f"was trained with (same dataset, m, v, cause files).")
        texts = [list(t) for t in state["texts"]]
        if texts != self.texts:
            if not self.adopt_checkpoint_texts:
                if len(texts) != len(self.texts):
                    where = f"the checkpoint has {len(texts)} texts, this model {len(self.texts)}"
                else:
                    n = next(i for i, (a, b) in enumerate(zip(texts, self.texts, strict=False)) if a != b)
                    at = (f"class {n // self.num_slots}, slot {n % self.num_slots}" if self.blocked
                          else f"text {n}")
                    where = (f"first at {at}: checkpoint {' | '.join(texts[n])!r}, here "
                             f"{' | '.join(self.texts[n])!r}")
                raise ValueError(
                    f"The checkpoint's texts differ from the ones built for this model ({where}): it was "
                    f"trained on other classes, another class order or "
                    f"other descriptions, and its record cannot tell which. Evaluate with the training run's "
                    f"dataset, seed and description settings, or retrain with this code (its checkpoints record "
                    f"their classes).")
            self.texts = texts
            self.stale = True
        if state.get("centroids") is not None:
            self.centroids = torch.as_tensor(state["centroids"]).float()


def template_table(classnames: Sequence[str], templates: Sequence[str]) -> TextTable:
    """One entry per class: the class name in every template (averaged embedding), scored by prompt 0."""
    if not templates:
        raise ValueError("At least one template is needed.")
    texts = [[t.format(class_text(c)) for t in templates] for c in classnames]
    c = len(classnames)
    return TextTable(texts, range(c), [0] * c, [0] * c, c, 1, 1)


def description_table(classnames: Sequence[str], sets: Sequence, prompt_of_set: Sequence[int] | None = None,
                      num_prompts: int | None = None) -> TextTable:
    """Entries from description sets, concatenated per class.

    A set is a list of [m sentences] per label (in label order, so that two classes sharing a name keep
    their own draws) or a mapping {class name: [m sentences]}. Class c's slots are set 0's sentences,
    then set 1's, ...; set s is scored by ``prompt_of_set[s]`` (default: all by prompt 0). DVP-cse: one
    set per cause, prompt i per cause. AttrVR: DesAttr and DistAttr with one prompt. DVP-cls: one set,
    prompts assigned later by clustering (``set_prompts``).
    """
    if not sets:
        raise ValueError("At least one description set is needed.")
    prompt_of_set = list(prompt_of_set) if prompt_of_set is not None else [0] * len(sets)
    if len(prompt_of_set) != len(sets):
        raise ValueError(f"{len(sets)} description sets but {len(prompt_of_set)} prompt indices.")
    rows_of_set, sizes = [], []
    for s, group in enumerate(sets):
        if isinstance(group, Mapping):
            missing = [c for c in classnames if c not in group]
            if missing:
                raise ValueError(f"Description set {s} has no sentences for the classes {missing[:5]}.")
            rows = [group[c] for c in classnames]
        else:
            rows = list(group)
            if len(rows) != len(classnames):
                raise ValueError(f"Description set {s} has sentences for {len(rows)} labels, the dataset has "
                                 f"{len(classnames)} classes.")
        counts = {len(r) for r in rows}
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"Description set {s} must hold the same (non-zero) number of sentences per "
                             f"class, got {sorted(counts)}; sample them with descriptions.sample_descriptions.")
        rows_of_set.append(rows)
        sizes.append(counts.pop())
    num_slots = sum(sizes)
    texts, classes, slots, prompts = [], [], [], []
    for ci in range(len(classnames)):
        slot = 0
        for s, rows in enumerate(rows_of_set):
            for sentence in rows[ci]:
                texts.append([sentence])
                classes.append(ci)
                slots.append(slot)
                prompts.append(prompt_of_set[s])
                slot += 1
    v = num_prompts if num_prompts is not None else max(prompt_of_set) + 1
    return TextTable(texts, classes, slots, prompts, len(classnames), num_slots, v)
