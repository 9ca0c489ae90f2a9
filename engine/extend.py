"""The project's config keys on top of Dassl's default tree.

Every module that needs keys (a dataset, a trainer, the backbone loader) registers a small function
``add_keys(cfg)`` with ``@register_config``; ``extend_cfg(cfg)`` applies the ones registered so far. The
entry layer imports the plugin packages first (plugins.load_plugins); the engine never imports them. This
works the same on the builtin engine and on real Dassl, because it only adds nodes to a yacs tree.
"""
from __future__ import annotations

from collections.abc import Callable

from yacs.config import CfgNode as CN

_CONFIG_HOOKS = []


def register_config(fn: Callable[[CN], None]) -> Callable[[CN], None]:
    """Decorator: ``fn(cfg)`` adds keys (with their defaults) to an unfrozen config."""
    if fn not in _CONFIG_HOOKS:
        _CONFIG_HOOKS.append(fn)
    return fn


def ensure_node(cfg: CN, dotted: str) -> CN:
    """Return the node at ``dotted`` (e.g. "TRAINER.DVP"), creating empty nodes on the way."""
    node = cfg
    for part in dotted.split("."):
        if part not in node:
            node[part] = CN()
        node = node[part]
    return node


@register_config
def _project_keys(cfg: CN) -> None:
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # CoOp: all, base or new
    cfg.DATASET.DESCRIPTIONS_DIR = ""  # "" -> the repository's descriptions/files folder
    cfg.MODEL.BACKBONE.WEIGHTS = ""  # open_clip weights tag or local checkpoint ("" -> openai for CoOp names)
    cfg.TEST.PER_EPOCH = False  # also test after every epoch (reference protocol's curve; never the headline)


def trainer_node(cfg: CN, name: str) -> CN:
    """``cfg.TRAINER.<name>``, or the one clear error of a config built without the project's keys."""
    node = cfg.TRAINER.get(name)
    if node is None:
        raise KeyError(f"Config node TRAINER.{name} is missing: build the config with engine.extend_cfg.")
    return node


def extend_cfg(cfg: CN) -> CN:
    """Add every registered group of project keys to ``cfg`` (call plugins.load_plugins() first)."""
    for hook in _CONFIG_HOOKS:
        hook(cfg)
    return cfg
