"""Trailing KEY VALUE options checked against the merged config tree before any work: an unknown key is named
with the closest real one, and a value the engine would silently read as something else is refused."""
from .names import did_you_mean

# The values Dassl's SimpleTrainer knows; it reads any other value (a typo such as "bestval") as last_step.
FINAL_MODELS = ("last_step", "best_val")


class ConfigOptionError(ValueError):
    """A trailing option that names no config key, has the wrong type or a value nothing reads."""


def leaf_keys(node, prefix=""):
    """The dotted names of every value of a yacs tree (OPTIM.LR, TRAINER.AR.PAD, ...)."""
    keys = []
    for key, value in node.items():
        if isinstance(value, dict):
            keys.extend(leaf_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def merge_options(cfg, opts):
    """``cfg.merge_from_list(opts)`` with one clear ConfigOptionError for every key the tree lacks."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigOptionError(f"Trailing config options must be KEY VALUE pairs, got an odd number: {opts}")
    known = leaf_keys(cfg)
    unknown = [key for key in opts[::2] if key not in set(known)]
    if unknown:
        named = "; ".join(f"{key}{did_you_mean(key, known)}" for key in unknown)
        raise ConfigOptionError(f"Unknown config key{'s' if len(unknown) > 1 else ''}: {named}. Keys are the "
                                f"dotted paths of Dassl's defaults and the project's keys (docs/running.md, "
                                f"python train.py --check-opts KEY VALUE checks them).")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError, TypeError) as err:
        raise ConfigOptionError(f"Bad config option in {opts}: {err}. Values must have the type of the "
                                f"default (e.g. OPTIM.MAX_EPOCH 50, OPTIM.LR 0.002).") from err


def check_values(cfg):
    """Values that name a choice the engine would not recognise (and silently replace)."""
    final = cfg.TEST.FINAL_MODEL
    if final not in FINAL_MODELS:
        raise ConfigOptionError(f"TEST.FINAL_MODEL {final!r} is not one of {', '.join(FINAL_MODELS)}"
                                f"{did_you_mean(final, FINAL_MODELS)}; the engine would deploy the last epoch.")


def check_model_selection(cfg, val_loader):
    """TEST.FINAL_MODEL best_val selects the epoch on the validation split: with none, Dassl would select it
    on the test images (a test-set-tuned number), so that is refused."""
    if cfg.TEST.FINAL_MODEL == "best_val" and val_loader is None:
        raise ConfigOptionError(f"TEST.FINAL_MODEL best_val picks the epoch with the best validation accuracy, but "
                                f"this {cfg.DATASET.NAME} run has no validation split, and the engine would pick "
                                f"it on the test images. Use TEST.FINAL_MODEL last_step (the default).")
