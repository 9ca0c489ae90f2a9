"""The Dassl-compatible engine, the bottom layer: trainers and datasets import only from here, and nothing
here imports them (the entry layer, plugins.py, imports the plugin packages).

With the `dassl` backend the Dassl names below are Dassl's own objects (so the project's trainers register in
Dassl's registries and are genuine Dassl trainers); with `builtin` they are the project's implementation of
the same contract (see engine/builtin). The backend is chosen on first use of one of those names, so the
stdlib-only helpers beside them (engine.io, engine.imageio, engine.errors, engine.run_logging, ...) import
without torch. ``read_image`` is the project's one reader (engine/imageio.py) on both backends.
"""
import importlib

from . import io  # noqa: F401  (engine.io: atomic writes and the file lock, on both backends)
from .backend import requested_backend

requested_backend()  # an invalid ENGINE_BACKEND fails at import; the backend itself is chosen on first use

# name -> Dassl module that holds it (the builtin engine exports every one of them from engine.builtin)
_DASSL_HOME = {
    "get_cfg_default": "dassl.config",
    "DataManager": "dassl.data",
    **dict.fromkeys(("DatasetWrapper", "build_data_loader"), "dassl.data.data_manager"),
    **dict.fromkeys(("DATASET_REGISTRY", "DatasetBase", "Datum", "build_dataset"), "dassl.data.datasets"),
    "build_sampler": "dassl.data.samplers",
    "build_transform": "dassl.data.transforms",
    **dict.fromkeys(("TRAINER_REGISTRY", "SimpleTrainer", "TrainerBase", "TrainerX", "build_trainer"),
                    "dassl.engine"),
    **dict.fromkeys(("EVALUATOR_REGISTRY", "build_evaluator"), "dassl.evaluation"),
    "compute_accuracy": "dassl.metrics",
    **dict.fromkeys(("build_lr_scheduler", "build_optimizer"), "dassl.optim"),
    **dict.fromkeys(("AverageMeter", "MetricMeter", "Registry", "check_isfile", "collect_env_info",
                     "count_num_param", "listdir_nohidden", "load_checkpoint", "load_pretrained_weights",
                     "mkdir_if_missing", "read_json", "resume_from_checkpoint", "save_checkpoint",
                     "set_random_seed", "write_json"), "dassl.utils"),
}
# project helpers that work on both backends: name -> engine submodule
_HELPERS = {"extend_cfg": ".extend", "register_config": ".extend", "load_fewshot_cache": ".fewshot_cache",
            "save_fewshot_cache": ".fewshot_cache", "read_image": ".imageio"}

__all__ = ["BACKEND", *_DASSL_HOME, *_HELPERS]


def _load_backend():
    """Choose the backend (engine/backend.py) and bind its names in this module."""
    from .backend import select_backend

    backend = select_backend()
    if backend == "dassl":
        values = {name: getattr(importlib.import_module(home), name) for name, home in _DASSL_HOME.items()}
        _use_project_reader_in_dassl()
    else:
        builtin = importlib.import_module(".builtin", __name__)
        values = {name: getattr(builtin, name) for name in _DASSL_HOME}
    globals().update(values, BACKEND=backend)


def _use_project_reader_in_dassl():
    """Dassl's DatasetWrapper reads with dassl.utils.read_image, which clips 16-bit images and names no file
    in its errors; point it at the project's reader, which returns the same RGB image for 8-bit files."""
    from dassl.data import data_manager

    from .imageio import read_image

    data_manager.read_image = read_image


def __getattr__(name):
    if name == "BACKEND" or name in _DASSL_HOME:
        _load_backend()
        return globals()[name]
    if name in _HELPERS:
        value = getattr(importlib.import_module(_HELPERS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
