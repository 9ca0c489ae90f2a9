"""The VR trainers in-process on ToyColors with test-tiny: training lowers the loss, checkpoints
re-evaluate exactly, DVP's statistics epoch, run files, and clear errors before training."""
import json
import os

import pytest
import torch

from engine import TRAINER_REGISTRY
from tests.trainer_fixtures import (  # noqa: F401
    eval_logits,
    make_trainer,
    registered_trainers,
    toy_cfg,
    toy_descriptions,
    train_set_loss,
    write_toy_descriptions,
)
from trainers.base import VRTrainer

# every registered VR trainer that learns, also those defined in test plugin modules (tests/test_*_plugin.py)
# (the black-box trainers have their own tests: tests/test_trainers_blackbox.py)
TRAINED = [n for n in registered_trainers(VRTrainer) if TRAINER_REGISTRY.get(n).TRAINS
           and not getattr(TRAINER_REGISTRY.get(n), "BLACK_BOX", False)]


@pytest.mark.parametrize("name", [n if n == "AR" else pytest.param(n, marks=pytest.mark.slow) for n in TRAINED])
def test_training_lowers_loss_and_checkpoint_reevaluates_exactly(name, toy_root, toy_descriptions, tmp_path,
                                                                   capsys):
    epochs = 2 + TRAINER_REGISTRY.get(name).STATS_EPOCHS  # DVP: epoch 0 collects PRM statistics only
    per_epoch = name == "DVP_CSE"
    # one batch of all 8 images per epoch; only the DVP_CSE run tests after epochs (per-epoch curve)
    opts = ["DATALOADER.TRAIN_X.BATCH_SIZE", 8, "TEST.PER_EPOCH", per_epoch, "TEST.NO_TEST", not per_epoch]
    if per_epoch:
        opts += ["TRAINER.DVP_CSE.ENCODER_CHUNK", 16]
    trainer = make_trainer(toy_cfg(name, toy_root, tmp_path / "run", toy_descriptions, epochs=epochs, opts=opts))
    before = train_set_loss(trainer)
    trainer.train()
    after = train_set_loss(trainer)
    assert after < before, f"{name}: training loss {before:.4f} -> {after:.4f}"
    fell_back = "fp16 autocast needs CUDA; training in fp32" in capsys.readouterr().out
    assert fell_back == (trainer.device.type == "cpu")  # the yaml's fp16: said once on a CPU, used on CUDA
    logits, labels = eval_logits(trainer)
    accuracy = 100.0 * (logits.argmax(1) == labels).float().mean().item()

    # the checkpoint holds only what was learned, in types real Dassl's torch.load(weights_only) accepts
    path = tmp_path / "run" / "vr_model" / f"model.pth.tar-{epochs}"
    state = torch.load(path, weights_only=True)["state_dict"]
    assert {k.split(".")[0] for k in state} <= {"prompts", "text_table", "aggregation"}
    assert (tmp_path / "run" / "vr_texts.json").is_file()

    # another seed samples other descriptions; loading the checkpoint restores the run's texts
    other = make_trainer(toy_cfg(name, toy_root, tmp_path / "eval", toy_descriptions, epochs=epochs, seed=7))
    other.load_model(str(tmp_path / "run"), epoch=epochs)
    assert other.model.text_table.texts == trainer.model.text_table.texts
    assert torch.equal(eval_logits(other)[0], logits)
    assert other.test() == pytest.approx(accuracy)

    if per_epoch:  # DVP: epoch 0 only collects statistics, so one curve point per updating epoch
        assert len(trainer.per_epoch_test) == epochs - 1
        records = json.loads((tmp_path / "run" / "per_epoch_test.json").read_text())
        assert [r["epoch"] for r in records] == [2, 3]


@pytest.mark.slow
def test_dvp_epoch0_updates_nothing_and_reestimates_the_prm(toy_root, toy_descriptions, tmp_path):
    cfg = toy_cfg("DVP_CLS", toy_root, tmp_path, toy_descriptions, epochs=1)
    trainer = make_trainer(cfg)
    assert len(trainer.train_loader_x) == 3  # 8 images in batches of 3: the partial batch is kept
    trainer.train()
    model = trainer.model
    assert torch.count_nonzero(model.prompts.delta) == 0
    assert trainer.optim.state_dict()["state"] == {}  # no optimiser step was taken
    assert trainer.get_current_lr() == cfg.OPTIM.LR  # the schedule did not move either
    prm = model.aggregation
    assert int(prm.epochs_estimated) == 1
    counts = prm.last_counts.float()
    assert counts.sum() == 8 * cfg.TRAINER.DVP_CLS.PRM_TOPK  # every training sample was counted
    assert torch.allclose(prm.weight, counts / counts.sum(1, keepdim=True))
    saved = torch.load(tmp_path / "prm.pt", weights_only=True)
    assert torch.equal(saved["omega_blocks"], prm.weight.cpu())
    assert torch.allclose(saved["contributions"].sum(1), torch.ones(4))
    rows = (tmp_path / "prm.csv").read_text().splitlines()
    assert rows[0] == "class,slot,prompt,weight,count,text" and len(rows) == 1 + 4 * 4
    contrib = (tmp_path / "prm_contributions.csv").read_text().splitlines()
    assert contrib[0] == "class,prompt_0,prompt_1"
    record = json.loads((tmp_path / "vr_texts.json").read_text())
    assert record["grouping"]["method"] == "kmeans" and record["grouping"]["n_init"] == 2
    assert trainer.extra_results()["vr"]["trainable_entries"] == 2 * 39936


def test_zeroshot_clip_evaluates_and_refuses_to_train(toy_root, toy_descriptions, tmp_path):
    trainer = make_trainer(toy_cfg("ZeroshotCLIP", toy_root, tmp_path, toy_descriptions))
    assert trainer.model.text_table.texts[0] == ["a photo of a red."]  # no CoOp template: the default one
    trainer.load_model("")
    assert 0.0 <= trainer.test() <= 100.0
    with pytest.raises(ValueError, match="ZeroshotCLIP has nothing to train: run it with --eval-only"):
        trainer.train()


def _bad(tmp_path, toy_descriptions):
    missing_class = write_toy_descriptions(tmp_path / "desc_missing", skip_class="yellow")
    return {
        "missing file": ("AttrVR", toy_descriptions, ["DATASET.DESCRIPTIONS_KEY", "nokey"],
                         FileNotFoundError, r"attributes/nokey_des.json .* not found"),
        "missing class": ("AttrVR", missing_class, [], ValueError, r"(?s)1 of 4 classes have no entry.*'yellow'"),
        "k > m": ("AttrVR", toy_descriptions, ["TRAINER.ATTRVR.K", 5], ValueError,
                  r"TRAINER.ATTRVR.K = 5 must lie in \[1, M\] with M = 4"),
        "prm k > m": ("DVP_CLS", toy_descriptions, ["TRAINER.DVP_CLS.PRM_TOPK", 5], ValueError,
                      r"PRM_TOPK = 5 must lie in \[1, M'\] where M' = 4"),
        "too many clusters": ("DVP_CLS", toy_descriptions, ["TRAINER.DVP_CLS.V", 17], ValueError,
                              r"Cannot form 17 k-means clusters from 16 descriptions"),
        "unknown prompt": ("AR", toy_descriptions, ["TRAINER.AR.PROMPT", "frame"], ValueError,
                           r'Unknown visual prompt kind "frame" \(TRAINER.AR.PROMPT\)'),
        "unknown cause": ("DVP_CSE", toy_descriptions, ["TRAINER.DVP_CSE.CAUSES", ["cse_1", "cse_9"]],
                          FileNotFoundError, r"(?s)causes/toy_cse_9.json.*present for 'toy': cse_1, cse_2, cse_3"),
        "input size": ("DVP_CSE", toy_descriptions, ["TRAINER.DVP_CSE.INPUT_SIZE", 224], ValueError,
                       r"input size \(224\) must be smaller than the backbone's image size \(224\)"),
        "watermark pad": ("VP", toy_descriptions, ["TRAINER.VP.PAD", 112], ValueError,
                          r"frame of width 112 does not fit an image of size 224"),
        "unknown grouping": ("DVP_CLS", toy_descriptions, ["TRAINER.DVP_CLS.GROUPING", "spectral"], ValueError,
                             r'Unknown grouping "spectral"'),
        "template choice": ("VP", toy_descriptions, ["TRAINER.VP.TEMPLATES", "clip80"], ValueError,
                            r'Unknown template choice "clip80"'),
    }


@pytest.mark.parametrize("case", ["missing file", "missing class", "k > m", "prm k > m", "too many clusters",
                                  "unknown prompt", "unknown cause", "input size", "watermark pad",
                                  "unknown grouping", "template choice"])
def test_bad_inputs_fail_clearly_before_training(case, toy_root, toy_descriptions, tmp_path):
    name, desc_dir, opts, error, message = _bad(tmp_path, toy_descriptions)[case]
    cfg = toy_cfg(name, toy_root, tmp_path / "run", desc_dir, opts=opts)
    with pytest.raises(error, match=message):
        make_trainer(cfg)
    assert not os.path.exists(tmp_path / "run" / "vr_model")


# the reference protocols: the AttrVR code (VP, AR, AttrVR) trains 1 shot with batch 16, the DVP code with 64
ONE_SHOT_BATCH = {"VP": 16, "AR": 16, "AttrVR": 16, "DVP_CSE": 64, "DVP_CLS": 64}


@pytest.mark.parametrize("name", sorted(ONE_SHOT_BATCH))
def test_one_shot_batch_follows_each_reference_as_train_py_builds_it(name, toy_root, toy_descriptions, tmp_path,
                                                                    capsys):
    import train
    from tests.trainer_fixtures import METHOD_OPTS, node_of

    node = node_of(name)
    small = [x for k, v in METHOD_OPTS.get(node, {}).items() for x in (f"TRAINER.{node}.{k}", str(v))]

    def build(shots):
        args = train.build_parser().parse_args([
            "--root", toy_root, "--seed", "1", "--trainer", name, "--backbone", "test-tiny",
            "--config-file", f"configs/trainers/{name}/vit_b16.yaml", "--output-dir", str(tmp_path / str(shots)),
            "DATASET.NAME", "ToyColors", "DATASET.NUM_SHOTS", str(shots), "DATASET.DESCRIPTIONS_DIR",
            toy_descriptions, "DATASET.DESCRIPTIONS_KEY", "toy", "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", "False",
            *small])
        return make_trainer(train.setup_cfg(args))

    trainer = build(1)
    assert trainer.cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 64  # the yaml's batch
    assert trainer.train_loader_x.batch_size == ONE_SHOT_BATCH[name]
    assert trainer.extra_results()["vr"]["train_batch_size"] == ONE_SHOT_BATCH[name]
    assert ("1 shot: training batch 16" in capsys.readouterr().out) == (ONE_SHOT_BATCH[name] == 16)
    if name == "AR":  # 2 shots: the yaml's batch
        assert build(2).train_loader_x.batch_size == 64
