"""The project's own implementation of Dassl 0.6.3's public contract."""
from .checkpoint import load_checkpoint, load_pretrained_weights, resume_from_checkpoint, save_checkpoint
from .config import get_cfg_default
from .data.datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
from .data.manager import DataManager, DatasetWrapper, build_data_loader, read_image
from .data.samplers import build_sampler
from .data.transforms import build_transform
from .evaluator import EVALUATOR_REGISTRY, Classification, EvaluatorBase, build_evaluator
from .metrics import compute_accuracy
from .optim import build_lr_scheduler, build_optimizer
from .registry import Registry, check_availability
from .trainer import TRAINER_REGISTRY, SimpleTrainer, TrainerBase, TrainerX, build_trainer
from .utils import (AverageMeter, MetricMeter, check_isfile, collect_env_info, count_num_param, listdir_nohidden,
                    mkdir_if_missing, read_json, set_random_seed, write_json)
