"""Config defaults, CoOp's merge order and the yacs behaviours users rely on."""
import pytest
import yaml

import train
from engine import get_cfg_default


def _args(*argv):
    return train.build_parser().parse_args(list(argv))


def test_defaults_match_dassl_values_and_types():
    cfg = get_cfg_default()
    assert cfg.DATASET.NUM_SHOTS == -1 and cfg.SEED == -1 and cfg.USE_CUDA is True
    assert tuple(cfg.INPUT.SIZE) == (224, 224)
    assert cfg.DATALOADER.NUM_WORKERS == 4 and cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 32
    assert cfg.MODEL.BACKBONE.PRETRAINED is True
    assert (cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.WEIGHT_DECAY) == ("adam", 0.0003, 5e-4)
    assert (cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.WARMUP_EPOCH) == ("single_step", 10, -1)
    assert (cfg.TEST.EVALUATOR, cfg.TEST.FINAL_MODEL, cfg.TEST.SPLIT) == ("Classification", "last_step", "test")
    # a fresh copy each call
    cfg.SEED = 5
    assert get_cfg_default().SEED == -1


def test_merge_order_dataset_then_trainer_then_flags_then_opts(tmp_path):
    ds = tmp_path / "ds.yaml"
    tr = tmp_path / "tr.yaml"
    ds.write_text(yaml.safe_dump({"DATASET": {"NAME": "ToyColors"}, "OPTIM": {"LR": 0.1, "MAX_EPOCH": 3},
                                  "OUTPUT_DIR": "from_dataset"}))
    tr.write_text(yaml.safe_dump({"OPTIM": {"LR": 0.2}, "OUTPUT_DIR": "from_trainer"}))
    args = _args("--dataset-config-file", str(ds), "--config-file", str(tr), "--output-dir", "from_flag",
                 "--seed", "0", "OPTIM.LR", "0.3")
    cfg = train.setup_cfg(args)
    assert cfg.DATASET.NAME == "ToyColors"
    assert cfg.OPTIM.MAX_EPOCH == 3          # dataset yaml
    assert cfg.OPTIM.LR == 0.3               # opts beat trainer yaml beat dataset yaml
    assert cfg.OUTPUT_DIR == "from_flag"     # flags beat both yaml files
    assert cfg.SEED == 0                     # --seed 0 is honoured (CoOp ignores it; documented)
    assert cfg.is_frozen()


def test_unknown_key_is_one_clear_error(tmp_path):
    with pytest.raises(train.UsageError, match="OPTIM.LRR"):
        train.setup_cfg(_args("OPTIM.LRR", "0.1"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  NOT_A_KEY: 1\n")
    with pytest.raises(train.UsageError, match="bad.yaml"):
        train.setup_cfg(_args("--config-file", str(bad)))


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(train.UsageError, match="does not exist"):
        train.setup_cfg(_args("--config-file", str(tmp_path / "nope.yaml")))


def test_literal_eval_and_type_rules():
    cfg = train.setup_cfg(_args("INPUT.SIZE", "(32, 32)", "OPTIM.STEPSIZE", "[5, 8]", "OPTIM.MAX_EPOCH", "7"))
    assert tuple(cfg.INPUT.SIZE) == (32, 32) and list(cfg.OPTIM.STEPSIZE) == [5, 8]  # list/tuple interchange
    assert cfg.OPTIM.MAX_EPOCH == 7 and isinstance(cfg.OPTIM.MAX_EPOCH, int)
    with pytest.raises(train.UsageError, match="type"):
        train.setup_cfg(_args("OPTIM.MAX_EPOCH", "'ten'"))
    with pytest.raises(train.UsageError, match="KEY VALUE"):
        train.setup_cfg(_args("OPTIM.MAX_EPOCH"))


def test_project_keys_are_added():
    cfg = train.setup_cfg(_args())
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "all"
    assert cfg.DATASET.DESCRIPTIONS_DIR == ""
    assert cfg.TEST.PER_EPOCH is False
