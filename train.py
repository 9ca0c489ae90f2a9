"""Train or evaluate one run, with CoOp's command line.

Merge order: Dassl defaults -> project keys (extend_cfg) -> dataset yaml -> trainer yaml -> CLI flags ->
trailing KEY VALUE pairs. Beside Dassl's log.txt the run writes config.yaml and results.json.

Deliberate difference from CoOp: `--seed 0` sets seed 0 (CoOp's `if args.seed:` silently ignores it).
"""
import argparse
import glob
import os
import sys
import time
import traceback

import torch

import engine
from engine import build_trainer, collect_env_info, distributed, get_cfg_default, set_random_seed
from engine.checkpoint_files import EPOCH_FILE, EPOCH_FILE_GLOB, model_file
from engine.config_check import ConfigOptionError, check_model_selection, check_values, merge_options
from engine.errors import user_error_message
from engine.finished_run import check_finished_run
from engine.names import did_you_mean
from engine.results import build_results, git_revision, write_config, write_results
from engine.run_logging import final_error_log, setup_run_logger, stop_run_logger
from plugins import load_plugins
from runs.jobs import CONFIG_KEY  # OPTIM.MAX_EPOCH, TRAINER.DVP_CLS.V, ...
from trainers.checkpoints import RunCheckpoints
from trainers.evaluated_run import evaluated_record, evaluating
from trainers.run_folders import check_resume_folder, check_run_folder, check_unrecorded_eval, read_checkpoint

LIST_FLAGS = ("source_domains", "target_domains", "transforms")  # nargs="+": they would swallow KEY VALUE


class UsageError(Exception):
    """A mistake in the command line, config or files that the user can fix."""


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=str, default="", help="path to dataset")
    p.add_argument("--output-dir", type=str, default="", help="output directory")
    p.add_argument("--resume", type=str, default="", help="checkpoint directory (from which the training resumes)")
    p.add_argument("--seed", type=int, default=None, help="only non-negative value enables a fixed seed")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    p.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    p.add_argument("--config-file", type=str, default="", help="path to config file")
    p.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    p.add_argument("--trainer", type=str, default="", help="name of trainer")
    p.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    p.add_argument("--head", type=str, default="", help="name of head")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    p.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    p.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    p.add_argument("--overwrite", action="store_true",
                   help="allow this command to rewrite a finished run (OUTPUT_DIR holding results.json): it is "
                        "evaluated again from its checkpoints and its config.yaml and results.json are replaced")
    p.add_argument("--check-opts", action="store_true",
                   help="only check the config files and trailing KEY VALUE options (keys, types, values), then exit")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options using the command-line")
    return p


def split_trailing_opts(args):
    """Give back the trailing KEY VALUE pairs that a list flag (``--transforms a b KEY VALUE``) swallowed."""
    for name in LIST_FLAGS:
        values = getattr(args, name)
        if not values:
            continue
        cut = next((i for i, v in enumerate(values) if CONFIG_KEY.match(v)), None)
        if cut is not None:
            setattr(args, name, values[:cut] or None)
            args.opts = values[cut:] + list(args.opts or [])
    return args


def reset_cfg(cfg, args):
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def _merge_file(cfg, path, what):
    if not os.path.isfile(path):
        raise UsageError(f"The {what} {path} does not exist. Pass an existing yaml file "
                         f"(see configs/datasets/ and configs/trainers/<TRAINER>/).")
    try:
        cfg.merge_from_file(path)
    except (KeyError, ValueError, AssertionError, TypeError) as err:
        raise UsageError(f"Cannot merge the {what} {path}: {err}. Fix the key or value in that file: keys must "
                         f"exist in Dassl's defaults (engine/builtin/config.py) or the project's keys "
                         f"(README, 'Configuration'), and values must have the type of the default.") from err


def setup_cfg(args):
    """Build the frozen config in CoOp's merge order, turning yacs errors into one clear message."""
    load_plugins()
    split_trailing_opts(args)
    cfg = get_cfg_default()
    engine.extend_cfg(cfg)
    if args.dataset_config_file:
        _merge_file(cfg, args.dataset_config_file, "dataset config file")
    if args.config_file:
        _merge_file(cfg, args.config_file, "trainer config file")
    reset_cfg(cfg, args)
    try:
        merge_options(cfg, args.opts)  # unknown keys named with the closest real one
        check_values(cfg)
    except ConfigOptionError as err:
        raise UsageError(str(err)) from err
    cfg.freeze()
    return cfg


def check_inputs(cfg, args):
    """Fail before any long work on the mistakes a user can make on the command line."""
    trainers = engine.TRAINER_REGISTRY.registered_names()
    if not cfg.TRAINER.NAME:
        raise UsageError(f"No trainer given. Pass --trainer NAME, one of {sorted(trainers)}.")
    if cfg.TRAINER.NAME not in trainers:
        raise UsageError(f'Unknown trainer "{cfg.TRAINER.NAME}"' + did_you_mean(cfg.TRAINER.NAME, trainers)
                         + f". Registered trainers: {sorted(trainers)}.")
    datasets = engine.DATASET_REGISTRY.registered_names()
    if not cfg.DATASET.NAME:
        raise UsageError("No dataset given. Pass --dataset-config-file configs/datasets/<name>.yaml.")
    if cfg.DATASET.NAME not in datasets:
        raise UsageError(f'Unknown dataset "{cfg.DATASET.NAME}" (DATASET.NAME)'
                         + did_you_mean(cfg.DATASET.NAME, datasets) + f". Registered datasets: {sorted(datasets)}.")
    if getattr(engine.DATASET_REGISTRY.get(cfg.DATASET.NAME), "test_only", False) and not args.eval_only:
        raise UsageError(f"{cfg.DATASET.NAME} is a test-only dataset (all its images are test images): do not "
                         f"train on it; evaluate a trained run with --eval-only --model-dir RUN (scripts/xd.sh).")
    if not cfg.DATASET.ROOT or not os.path.isdir(cfg.DATASET.ROOT):
        raise UsageError(f'The dataset root "{cfg.DATASET.ROOT}" (--root) does not exist. Create it and put the '
                         f"datasets there (python -m datasets.download NAME --root DIR), or pass the right --root.")
    trainer_class = engine.TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    if args.eval_only and args.model_dir:
        check_model_dir(args.model_dir, args.load_epoch)
        if not issubclass(trainer_class, RunCheckpoints):  # no record in its checkpoints: check the run folder
            check_unrecorded_eval(args.model_dir, cfg)
    training = not args.eval_only and not args.no_train
    if training and hasattr(trainer_class, "check_training_cfg"):
        trainer_class.check_training_cfg(cfg)  # NUM_SHOTS, MAX_EPOCH that would make training meaningless
    check_run_folder(cfg.OUTPUT_DIR, cfg)  # never reuse a folder of another run
    check_finished_run(cfg.OUTPUT_DIR, args.overwrite, args.eval_only)  # a finished run changes only on request
    if training:
        check_resume_folder(cfg.RESUME or cfg.OUTPUT_DIR, cfg, required=bool(cfg.RESUME))


def check_model_dir(model_dir, load_epoch):
    if not os.path.isdir(model_dir):
        raise UsageError(f"--model-dir {model_dir} does not exist. Pass the OUTPUT_DIR of a finished training run.")
    found = sorted(glob.glob(os.path.join(model_dir, "*", EPOCH_FILE_GLOB)) +
                   glob.glob(os.path.join(model_dir, "*", model_file())))
    if not found:
        raise UsageError(f"--model-dir {model_dir} holds no checkpoint (expected <model name>/{EPOCH_FILE} "
                         f"inside it). Train first, or point --model-dir at a run folder that has one.")
    wanted = model_file(load_epoch)
    if not any(os.path.basename(f) == wanted for f in found):
        have = sorted({os.path.basename(f) for f in found})
        hint = ("pass --load-epoch N with one of the saved epochs"
                if load_epoch is None else "pass one of the saved epochs")
        raise UsageError(f"--model-dir {model_dir} has no {wanted} (it has {', '.join(have)}); {hint}.")
    for path in found:
        if os.path.basename(path) == wanted:
            read_checkpoint(path)  # a corrupt or empty file: one clear error before any work


def print_args(args, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__):
        print(f"{key}: {args.__dict__[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def nan_message(err, trainer):
    """The NaN/inf-loss message with the epoch and batch where it happened, and advice that fits the precision
    the run used. The builtin TrainerX puts epoch and batch in the message itself; real Dassl raises a bare
    "Loss is infinite or NaN!", so they are added here."""
    msg = str(err)
    if "(epoch " not in msg and hasattr(trainer, "batch_idx"):
        msg = (f"{msg} (epoch {trainer.epoch + 1}/{trainer.max_epoch}, batch {trainer.batch_idx + 1}/"
               f"{getattr(trainer, 'num_batches', '?')}). Training stopped; checkpoints of earlier epochs are kept.")
    return f"{msg} {precision_advice(trainer)}"


def precision_advice(trainer):
    """"Lower OPTIM.LR", plus the precision key to set when the run trained under fp16/bf16 autocast."""
    from trainers.clip_plumbing import precision_used

    node_name = getattr(trainer, "NODE", "")
    node = trainer.cfg.TRAINER.get(node_name) if node_name else None
    for key in ("PRECISION", "PREC"):  # VR trainers; the CoOp family
        if node is not None and key in node:
            used = precision_used(node[key], trainer.device)
            if used != "fp32":
                return f"Lower OPTIM.LR, or train in fp32: TRAINER.{node_name}.{key} fp32 (this run used {used})."
            return "Lower OPTIM.LR (this run already trained in fp32)."
    return "Lower OPTIM.LR."


def start_distributed(cfg):
    """Join torchrun's process group when WORLD_SIZE > 1 (builtin engine only); True in a multi-process run."""
    if distributed.env_world_size() <= 1:
        return False
    if engine.BACKEND != "builtin":
        raise UsageError(f"Multi-process training (torchrun, WORLD_SIZE={distributed.env_world_size()}) needs the "
                         f"builtin engine, but the backend is {engine.BACKEND}. Set ENGINE_BACKEND=builtin.")
    return distributed.init_from_env(use_cuda=cfg.USE_CUDA)


def run(args):
    """Run one job; returns the results mapping (None when nothing was evaluated).

    Under torchrun every process runs this; rank 0 alone prints and writes the run's files.
    """
    start = time.time()
    cfg = setup_cfg(args)
    if args.check_opts:  # the runners' one check of a sweep's options before its first run
        print("config files and options: OK")
        return None
    check_inputs(cfg, args)
    multi = start_distributed(cfg)
    if not multi:
        return _run(args, cfg, start)
    console = sys.stdout
    if not distributed.is_main_process():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the other ranks print nothing; errors go to stderr)
    try:
        return _run(args, cfg, start)
    finally:
        if sys.stdout is not console and not distributed.is_main_process():
            sys.stdout.close()
            sys.stdout = console
        distributed.shutdown()


def _run(args, cfg, start):
    main_process = distributed.is_main_process()
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    if main_process:
        setup_run_logger(cfg.OUTPUT_DIR)
    try:
        if torch.cuda.is_available() and cfg.USE_CUDA:
            torch.backends.cudnn.benchmark = True
        print_args(args, cfg)
        print("Collecting env info ...")
        print(f"** System info **\n{collect_env_info()}\n")
        print(f"Engine backend: {engine.BACKEND}; code revision: {git_revision()}")
        evaluated = evaluated_record(args.model_dir, args.load_epoch) if args.eval_only and args.model_dir \
            else (None, None)
        with evaluating(*evaluated):  # settings the model must take from its checkpoint (DVP_CLS's v)
            trainer = build_trainer(cfg)
        check_model_selection(cfg, getattr(trainer, "val_loader", None))
        if main_process:  # only now: data and model were found (a wrong --root leaves the folder's record alone)
            write_config(cfg, cfg.OUTPUT_DIR)
        untrained = args.eval_only and not args.model_dir and getattr(trainer, "TRAINS", True)
        if args.eval_only:
            if untrained:
                print(f"NOTE: --eval-only without --model-dir: {cfg.TRAINER.NAME} is evaluated UNTRAINED (its "
                      f"initial parameters); results.json records \"untrained\": true. Pass --model-dir DIR to "
                      f"evaluate a trained run.")
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            if main_process and hasattr(trainer, "write_run_record"):
                trainer.write_run_record({"eval_only": True, "model_dir": args.model_dir or None,
                                          "untrained": bool(untrained), **trainer.loaded_results()})
            trainer.test()
        elif not args.no_train:
            try:
                trainer.train()
            except FloatingPointError as err:
                raise FloatingPointError(nan_message(err, trainer)) from err
        else:
            return None
        if cfg.TEST.NO_TEST and not args.eval_only:
            return None
        results = build_results(cfg, trainer, time.time() - start)
        if untrained:
            results["untrained"] = True
        if main_process:
            path = write_results(results, cfg.OUTPUT_DIR)
            print(f"Results written to {path}")
        return results
    finally:
        sys.stdout.flush()
        stop_run_logger()


def main(argv=None):
    from backbones import MissingWeightsError

    args = build_parser().parse_args(argv)
    with final_error_log(args.output_dir) as record_error:
        try:
            run(args)
        except Exception as err:
            msg = user_error_message(err, (UsageError, ValueError, FileNotFoundError, KeyError, FloatingPointError,
                                           MissingWeightsError))
            if msg is None:  # a bug: its traceback goes into the log, and to the console as usual
                record_error(traceback.format_exc())
                raise
            print(f"\nERROR: {msg}", file=sys.stderr)
            record_error(f"ERROR: {msg}")
            if os.environ.get("VR_DEBUG"):
                raise
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
