"""What a VR trainer's checkpoint is (its prompt identity) and how it loads for the trained or other classes
(the rules: VRTrainer's docstring in trainers/base.py)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vr import prompt_class, prompt_settings

from .run_record import CheckpointError


class VRClassTransfer:
    """Mixed into VRTrainer (first): its checkpoint identity and class-set surgery."""

    # ---- checkpoints: identity and other class sets (trainers/checkpoints.py) --------------------
    def prompt_identity(self) -> dict[str, Any]:
        node, kind = self.vcfg, str(self.vcfg.PROMPT).lower()
        geometry = {"kind": kind, "num_prompts": int(self.num_prompts()), "image_size": int(self.clip.image_size)}
        geometry.update(prompt_settings(prompt_class(kind), node))  # the kind's own keys
        return geometry

    def load_same_classes(self, name: str, checkpoint: dict[str, Any], verified: bool) -> None:
        table = self.model.text_table
        table.adopt_checkpoint_texts = verified  # the record says: same classes, so the trained texts
        try:
            self._models[name].load_state_dict(checkpoint["state_dict"])
        finally:
            table.adopt_checkpoint_texts = False

    def load_other_classes(self, name: str, checkpoint: dict[str, Any], trained: Sequence[str]) -> None:
        evaluated = self.classnames_in_label_order()
        ambiguous = sorted({c for c in trained if trained.count(c) > 1} & set(evaluated))
        if ambiguous:  # classes are matched by name: a name trained under two labels has no single match
            raise CheckpointError(
                f"The evaluated classes include {ambiguous}, which the training run has under more than one label "
                f"(e.g. ImageNet's two 'missile' classes), so their trained texts, prompts and PRM rows cannot be "
                f"matched by name. Evaluate without those classes, or on the training class set.")
        state = checkpoint["state_dict"]
        model, table = self.model, self.model.text_table
        if not table.blocked:  # texts are matched to classes by their blocks
            raise CheckpointError(f"{self.cfg.TRAINER.NAME} scores texts in the free layout ({table.layout()}); "
                                  f"scoring other classes than the trained ones needs its own load_other_classes.")
        model.prompts.load_state_dict(_part(state, "prompts"))
        saved = state["text_table._extra_state"]
        if (saved["num_slots"], saved["num_prompts"]) != (table.num_slots, table.num_prompts):
            raise CheckpointError(
                f"The checkpoint scores {saved['num_slots']} texts per class with {saved['num_prompts']} prompts, "
                f"this model {table.num_slots} with {table.num_prompts}: evaluate with the method settings of "
                f"the training run (M, V, CAUSES).")
        m, seen = table.num_slots, {c: i for i, c in enumerate(trained)}
        old_grid = state["text_table.prompts"].view(len(trained), m)
        grid = table.prompt_grid().clone()
        unseen = [e for e, c in enumerate(evaluated) if c not in seen]
        if unseen:
            self.assign_unseen_prompts(table, grid, unseen, saved)
        texts = list(table.texts)
        for e, c in enumerate(evaluated):
            if c in seen:
                t = seen[c]
                texts[e * m:(e + 1) * m] = [list(x) for x in saved["texts"][t * m:(t + 1) * m]]
                grid[e] = old_grid[t]
        table.texts, table.stale = texts, True
        table.set_prompts(grid.reshape(-1))
        if saved.get("centroids") is not None:
            table.centroids = torch.as_tensor(saved["centroids"]).float()
        _load_class_rows(model.aggregation, _part(state, "aggregation"), [seen.get(c) for c in evaluated])
        model.refresh_text()


def _part(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of a state_dict under ``prefix.``, with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}


@torch.no_grad()
def _load_class_rows(module, saved, rows):
    """Load a module's saved buffers for another class set: buffer row e takes saved row ``rows[e]``
    (a class seen in training), or keeps its initial value (``None``: unseen); others load as saved."""
    own = module.state_dict()
    for key, value in saved.items():
        if key not in own:
            raise CheckpointError(f"The checkpoint's aggregation has {key}, this model's has not.")
        target = own[key]
        per_class = value.dim() >= 1 and target.dim() >= 1 and target.shape[0] == len(rows)
        if per_class and value.shape[1:] == target.shape[1:]:
            for e, t in enumerate(rows):
                if t is not None:
                    target[e] = value[t]
        elif value.shape == target.shape:
            target.copy_(value)
        else:
            raise CheckpointError(f"The checkpoint's aggregation {key} has shape {tuple(value.shape)}, this "
                                  f"model's {tuple(target.shape)}.")
