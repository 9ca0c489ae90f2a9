"""train.py argument lists and in-process runs of tiny trainings on ToyColors (tests/toy_plugin.py) with
test-tiny, shared by the tests that train (here, not imported from another test module)."""
import json
import os

import train
from tests.trainer_fixtures import KEY, TEST_DEVICE, make_trainer, node_of, toy_cfg

# a ToyLinear run (tests/toy_plugin.py): 4 epochs, a checkpoint each
TOY = ["--trainer", "ToyLinear", "--seed", "1", "DATASET.NAME", "ToyColors", "INPUT.SIZE", "(16, 16)",
       "INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
       "OPTIM.NAME", "sgd", "OPTIM.LR", "0.5", "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.MAX_EPOCH", "4",
       "TRAIN.CHECKPOINT_FREQ", "1", "TEST.PER_CLASS_RESULT", "True"]


# CoOp's trainer configs
CONFIGS = os.path.join(train.__file__.rsplit(os.sep, 1)[0], "configs", "trainers", "CoOp")
# what a CoOp-family trainer needs beside its vit_b16.yaml to run on test-tiny (2 blocks per tower)
TINY_PROMPTS = {"CoOp": ["TRAINER.COOP.N_CTX", "4"], "KgCoOp": ["TRAINER.KGCOOP.W", "8.0"],
                "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "2"]}


def prompt_args(trainer, root, out, *opts, extra=()):
    """train.py arguments of a CoOp-family run on ToyColors with test-tiny (configs/trainers/<trainer>/vit_b16.yaml)."""
    config = os.path.join(os.path.dirname(CONFIGS), trainer, "vit_b16.yaml")
    return ["--root", root, "--output-dir", str(out), "--trainer", trainer, "--seed", "1", "--config-file", config,
            *extra, "DATASET.NAME", "ToyColors", "MODEL.BACKBONE.NAME", "test-tiny", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TEST.BATCH_SIZE", "16", "DATASET.NUM_SHOTS", "16", *TINY_PROMPTS.get(trainer, []),
            *[str(o) for o in opts]]


def coop_args(root, out, *opts, extra=()):
    """train.py arguments of a CoOp run on ToyColors with test-tiny (configs/trainers/CoOp/vit_b16.yaml)."""
    return prompt_args("CoOp", root, out, *opts, extra=extra)


def toy_argv(trainer, root, out, descriptions, *opts, extra=()):
    """train.py arguments of a tiny run on ToyColors (the settings of trainer_fixtures.toy_cfg)."""
    node = node_of(trainer)
    argv = ["--root", root, "--output-dir", str(out), "--trainer", trainer, "--seed", "1", *extra,
            "DATASET.NAME", "ToyColors", "DATASET.NUM_SHOTS", "2", "DATASET.DESCRIPTIONS_DIR", descriptions,
            "DATASET.DESCRIPTIONS_KEY", KEY, "MODEL.BACKBONE.NAME", "test-tiny", "USE_CUDA", "False",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "OPTIM.NAME", "sgd",
            "OPTIM.LR", "10.0", "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "100"]
    if node == "DVP_CLS":
        argv += ["TRAINER.DVP_CLS.M", "4", "TRAINER.DVP_CLS.PRM_TOPK", "2", "TRAINER.DVP_CLS.V", "2",
                 "TRAINER.DVP_CLS.KMEANS_N_INIT", "2"]
    return argv + [str(o) for o in opts]


# per feature trainer: settings that keep its run short
SMALL = {"TipAdapter": ["TRAINER.TIPADAPTER.AUGMENT_EPOCH", "2", "TRAINER.TIPADAPTER.SEARCH_STEP", "[20, 5]"],
         "TipAdapterF": ["TRAINER.TIPADAPTERF.AUGMENT_EPOCH", "2", "TRAINER.TIPADAPTERF.SEARCH_STEP", "[20, 5]",
                         "OPTIM.NAME", "adamw", "OPTIM.LR", "0.01"],
         "LPPlusPlus": ["TRAINER.LPPLUSPLUS.EPOCHS", "30"],
         "CLIPAdapter": ["OPTIM.LR", "0.5", "OPTIM.WEIGHT_DECAY", "0.0"],
         "LinearProbe": ["TRAINER.LINEARPROBE.SEARCH_STEPS", "2"]}


def feature_run_args(name, root, out, *opts, dataset="ToyColors"):
    """train.py arguments of a short run of a feature-based baseline (tests/test_trainers_features.py)."""
    return ["--root", root, "--output-dir", str(out), "--trainer", name, "--seed", "1",
            "DATASET.NAME", dataset, "DATASET.NUM_SHOTS", "2", "MODEL.BACKBONE.NAME", "test-tiny",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "16",
            "OPTIM.MAX_EPOCH", "3", "TRAIN.PRINT_FREQ", "100", "USE_CUDA", str(TEST_DEVICE == "cuda"),
            *SMALL.get(name, []), *[str(o) for o in opts]]


def feature_run(name, root, out, *opts, extra=(), dataset="ToyColors"):
    """train.py (in-process) on those arguments; -> its results.json."""
    assert train.main([*extra, *feature_run_args(name, root, out, *opts, dataset=dataset)]) == 0
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def train_run(name, root, out, descriptions, epochs, opts=()):
    """Train in-process and write config.yaml, as train.py does; return the trainer."""
    from engine.results import write_config

    opts = ["DATALOADER.TRAIN_X.BATCH_SIZE", 8, "TEST.NO_TEST", True, "TRAIN.CHECKPOINT_FREQ", 1, *opts]
    cfg = toy_cfg(name, root, out, descriptions, epochs=epochs, opts=opts)
    trainer = make_trainer(cfg)
    write_config(cfg, cfg.OUTPUT_DIR)
    trainer.train()
    return trainer
