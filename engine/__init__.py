"""The Dassl-compatible engine. Trainers and datasets import only from here.

With the `dassl` backend these names are Dassl's own objects (so the project's trainers register in Dassl's
registries and are genuine Dassl trainers); with `builtin` they are the project's implementation of the same
contract (see engine/builtin). Project helpers that work on both live beside them (io, extend, fewshot_cache,
run_logging, results).
"""
from .backend import select_backend

BACKEND = select_backend()

if BACKEND == "dassl":
    from dassl.config import get_cfg_default
    from dassl.data import DataManager
    from dassl.data.data_manager import DatasetWrapper, build_data_loader
    from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
    from dassl.data.samplers import build_sampler
    from dassl.data.transforms import build_transform
    from dassl.engine import TRAINER_REGISTRY, SimpleTrainer, TrainerBase, TrainerX, build_trainer
    from dassl.evaluation import EVALUATOR_REGISTRY, build_evaluator
    from dassl.metrics import compute_accuracy
    from dassl.optim import build_lr_scheduler, build_optimizer
    from dassl.utils import (AverageMeter, MetricMeter, Registry, check_isfile, collect_env_info, count_num_param,
                             listdir_nohidden, load_checkpoint, load_pretrained_weights, mkdir_if_missing,
                             read_image, read_json, resume_from_checkpoint, save_checkpoint, set_random_seed,
                             write_json)
else:
    from .builtin import (DATASET_REGISTRY, EVALUATOR_REGISTRY, TRAINER_REGISTRY, AverageMeter, DataManager,
                          DatasetBase, DatasetWrapper, Datum, MetricMeter, Registry, SimpleTrainer, TrainerBase,
                          TrainerX, build_data_loader, build_dataset, build_evaluator, build_lr_scheduler,
                          build_optimizer, build_sampler, build_trainer, build_transform, check_isfile,
                          collect_env_info, compute_accuracy, count_num_param, get_cfg_default, listdir_nohidden,
                          load_checkpoint, load_pretrained_weights, mkdir_if_missing, read_image, read_json,
                          resume_from_checkpoint, save_checkpoint, set_random_seed, write_json)

from . import io  # noqa: E402,F401  (engine.io: atomic writes, on both backends)
from .extend import extend_cfg, register_config  # noqa: E402
from .fewshot_cache import load_fewshot_cache, save_fewshot_cache  # noqa: E402

__all__ = [
    "BACKEND", "DATASET_REGISTRY", "EVALUATOR_REGISTRY", "TRAINER_REGISTRY", "AverageMeter", "DataManager",
    "DatasetBase", "DatasetWrapper", "Datum", "MetricMeter", "Registry", "SimpleTrainer", "TrainerBase", "TrainerX",
    "build_data_loader", "build_dataset", "build_evaluator", "build_lr_scheduler", "build_optimizer",
    "build_sampler", "build_trainer", "build_transform", "check_isfile", "collect_env_info", "compute_accuracy",
    "count_num_param", "get_cfg_default", "listdir_nohidden", "load_checkpoint", "load_pretrained_weights",
    "mkdir_if_missing", "read_image", "read_json", "resume_from_checkpoint", "save_checkpoint", "set_random_seed",
    "write_json", "extend_cfg", "register_config", "load_fewshot_cache", "save_fewshot_cache",
]
