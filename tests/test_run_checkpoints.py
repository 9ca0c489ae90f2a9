"""Checkpoints know what made them; resume never changes the protocol; evaluating a trained run on another
class set scores the evaluated classes (base-to-new), never the checkpoint's texts; meaningless settings
and broken checkpoint files fail with one ERROR line before any work."""
import json
import os
import sys

import pytest
import torch
import yaml

import train
from engine import TRAINER_REGISTRY
from engine.protocol_keys import PROTOCOL_EXCLUDED
from tests.conftest import kill_and_resume
from tests.toy_runs import toy_argv
from tests.trainer_fixtures import (  # noqa: F401
    eval_logits,
    make_trainer,
    registered_trainers,
    toy_cfg,
    toy_descriptions,
)
from trainers.base import VRTrainer
from trainers.run_record import CheckpointError
from vr import nearest_centroid, template_table

BASE, NEW = ["red", "green"], ["blue", "yellow"]  # ToyColors' SUBSAMPLE_CLASSES halves
# the registered VR trainers that learn (test plugins included), by whether they can score other classes
# (the black-box trainers have their own tests: tests/test_trainers_blackbox.py)
VR_LEARNING = [TRAINER_REGISTRY.get(n) for n in registered_trainers(VRTrainer) if TRAINER_REGISTRY.get(n).TRAINS
               and not getattr(TRAINER_REGISTRY.get(n), "BLACK_BOX", False)]
VR_TRAINED = [t.__name__ for t in VR_LEARNING if t.CLASS_TRANSFER]
VR_CLASS_BOUND = [t.__name__ for t in VR_LEARNING if not t.CLASS_TRANSFER]


def error_of(capsys, code):
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("ERROR:") == 1, err
    return err


@pytest.fixture(scope="module")
def ar_run(toy_root, toy_descriptions, tmp_path_factory):
    """A finished 2-epoch AR run (through train.py) and its results."""
    import tests.toy_plugin  # noqa: F401  (ToyColors)

    out = tmp_path_factory.mktemp("ar_run")
    assert train.main(toy_argv("AR", toy_root, out, toy_descriptions)) == 0
    return out


# ---- A: what a checkpoint and a run folder record ------------------------------------------------------
def test_checkpoint_and_run_folder_record_what_made_them(ar_run):
    record = torch.load(ar_run / "vr_model" / "model.pth.tar-2", weights_only=True)["run"]
    assert record["trainer"] == "AR"
    assert record["backbone"] == {"name": "test-tiny", "weights": "", "pretrained": True}
    assert record["prompt"] == {"kind": "padding", "num_prompts": 1, "image_size": 224, "input_size": 192}
    assert record["classnames"] == ["red", "green", "blue", "yellow"]  # label order
    assert record["shots"] == 2 and record["seed"] == 1
    assert record["dataset"]["NAME"] == "ToyColors" and record["dataset"]["SUBSAMPLE_CLASSES"] == "all"
    assert record["config"]["OPTIM.LR"] == 10.0 and "OUTPUT_DIR" not in record["config"]
    assert len(record["config_hash"]) == 16 and record["excluded_keys"] == list(PROTOCOL_EXCLUDED)
    run_record = json.loads((ar_run / "run.json").read_text())
    assert run_record["config_hash"] == record["config_hash"]
    # the data it trained on (issue 19): the same flat identity as results.json's
    assert run_record["data_identity"] == record["data_identity"] == \
        json.loads((ar_run / "results.json").read_text())["data_identity"]
    assert record["data_identity"]["num_classes"] == 4 and record["data_identity"]["num_train"] == 8


def test_resume_with_another_config_is_an_error_naming_the_keys(toy_root, toy_descriptions, tmp_path):
    out = tmp_path / "run"
    make_trainer(toy_cfg("AR", toy_root, out, toy_descriptions, epochs=2)).train()
    changed = toy_cfg("AR", toy_root, out, toy_descriptions, epochs=2,
                      opts=["OPTIM.LR", 1.0, "DATASET.NUM_SHOTS", 1, "DATALOADER.NUM_WORKERS", 1])
    with pytest.raises(CheckpointError) as err:
        make_trainer(changed).train()
    msg = str(err.value)
    assert "OPTIM.LR: 10.0 -> 1.0" in msg and "DATASET.NUM_SHOTS: 2 -> 1" in msg
    assert "NUM_WORKERS" not in msg.split("keys never compared")[0]  # workers do not change the protocol


def test_another_trainer_never_reuses_or_overwrites_a_run(ar_run, toy_root, toy_descriptions, tmp_path, capsys):
    before = (ar_run / "results.json").read_text()
    err = error_of(capsys, train.main(toy_argv("VP", toy_root, ar_run, toy_descriptions)))
    assert "TRAINER.NAME: 'AR' -> 'VP'" in err and "never overwritten" in err
    assert (ar_run / "results.json").read_text() == before
    assert yaml.safe_load((ar_run / "config.yaml").read_text())["TRAINER"]["NAME"] == "AR"
    # evaluating the AR checkpoint as VP: the trainer (and prompt) differ
    err = error_of(capsys, train.main(toy_argv("VP", toy_root, tmp_path / "ev", toy_descriptions, extra=[
        "--eval-only", "--model-dir", str(ar_run), "--load-epoch", "2"])))
    assert "was made with trainer 'AR', this run uses 'VP'" in err
    # a test-tiny prompt evaluated on another backbone
    err = error_of(capsys, train.main(toy_argv("AR", toy_root, tmp_path / "ev2", toy_descriptions,
                                               "MODEL.BACKBONE.NAME", "digits-tiny", extra=[
                                                   "--eval-only", "--model-dir", str(ar_run), "--load-epoch", "2"])))
    assert "was made with another backbone (name 'test-tiny' here 'digits-tiny')" in err


def test_a_run_is_never_continued_or_reevaluated_on_other_data(toy_root, toy_descriptions, tmp_path, capsys):
    """Issue 19: the sweep reruns a finished run whose data changed with --overwrite; resuming it used to test the
    old prompt on the new data and record the new data identity, so the stale run looked current."""
    from tests.toy_plugin import make_toy_root

    other = tmp_path / "other_root"
    make_toy_root(str(other), n_test=3)  # the same classes, one test image fewer per class
    out = tmp_path / "run"
    assert train.main(toy_argv("AR", toy_root, out, toy_descriptions)) == 0
    capsys.readouterr()
    before = (out / "results.json").read_text()
    err = error_of(capsys, train.main(toy_argv("AR", str(other), out, toy_descriptions, extra=["--overwrite"])))
    assert "was trained on other data than this run's" in err and "num_test 16 -> 12" in err
    assert (out / "results.json").read_text() == before
    # the same data: --overwrite re-evaluates the finished run to the same accuracy
    assert train.main(toy_argv("AR", toy_root, out, toy_descriptions, extra=["--overwrite"])) == 0
    assert json.loads((out / "results.json").read_text())["accuracy"] == json.loads(before)["accuracy"]


def test_texts_are_checked_never_adopted_silently(tiny_clip):
    trained = template_table(["red", "green"], ["a photo of a {}."])
    other_order = template_table(["green", "red"], ["a photo of a {}."])
    with pytest.raises(ValueError, match="texts differ from the ones built for this model"):
        other_order.load_state_dict(trained.state_dict())
    assert other_order.texts == [["a photo of a green."], ["a photo of a red."]]
    other_order.adopt_checkpoint_texts = True  # what load_model sets once the record shows the same classes
    other_order.load_state_dict(trained.state_dict())
    assert other_order.texts == trained.texts and other_order.stale


def test_checkpoint_without_record_loads_for_the_same_classes_with_a_warning(ar_run, toy_root, toy_descriptions,
                                                                              tmp_path):
    old = tmp_path / "old_run" / "vr_model"
    old.mkdir(parents=True)
    checkpoint = torch.load(ar_run / "vr_model" / "model.pth.tar-2", weights_only=True)
    del checkpoint["run"]  # as written by the code before records
    torch.save(checkpoint, old / "model.pth.tar-2")
    ev = make_trainer(toy_cfg("AR", toy_root, tmp_path / "ev", toy_descriptions))
    ev.load_model(str(old.parent), epoch=2)
    assert torch.equal(ev.model.prompts.delta, checkpoint["state_dict"]["prompts.delta"])
    assert "could not be verified" in ev.extra_results()["warnings"][0]
    # other texts (here: CoOp's template) cannot be told apart from other classes: an error, not a swap
    ev2 = make_trainer(toy_cfg("AR", toy_root, tmp_path / "ev2", toy_descriptions,
                               opts=["TRAINER.AR.TEMPLATES", "coop"]))
    with pytest.raises(ValueError, match="texts differ"):
        ev2.load_model(str(old.parent), epoch=2)


# ---- C: base-to-new for every trainer ----------------------------------------------------------------
def direct_vr_logits(trainer, images, texts, grid):
    """Class logits computed here from the loaded prompts and an independent encoding of ``texts``."""
    model = trainer.model
    emb = trainer.clip.encode_text([t[0] for t in texts])  # one string per entry in these tables
    feats = model.image_features(images)  # (v, B, D) under the loaded prompts
    c, m = grid.shape
    z = torch.stack([trainer.clip.logit_scale * feats[int(grid[i, j])] @ emb[i * m + j]
                     for i in range(c) for j in range(m)], dim=1).view(images.shape[0], c, m)
    return model.aggregation(z)


@pytest.mark.parametrize("name", VR_TRAINED)
def test_base_to_new_scores_the_new_classes_texts(name, toy_root, toy_descriptions, tmp_path):
    epochs = 2 + TRAINER_REGISTRY.get(name).STATS_EPOCHS
    opts = ["DATALOADER.TRAIN_X.BATCH_SIZE", 8, "TEST.NO_TEST", True]
    run = tmp_path / "run"
    trained = make_trainer(toy_cfg(name, toy_root, run, toy_descriptions, epochs=epochs,
                                   opts=opts + ["DATASET.SUBSAMPLE_CLASSES", "base"]))
    trained.train()
    ev = make_trainer(toy_cfg(name, toy_root, tmp_path / "ev", toy_descriptions, epochs=epochs,
                              opts=opts + ["DATASET.SUBSAMPLE_CLASSES", "new"]))
    table = ev.model.text_table
    built = [list(t) for t in table.texts]  # the new classes' texts, sampled as in training (seeded)
    ev.load_model(str(run), epoch=epochs)
    assert ev.class_policy == {"trained": BASE, "evaluated": NEW, "policy": type(ev).CLASS_TRANSFER}
    assert ev.extra_results()["classes"]["evaluated"] == NEW
    assert table.texts == built and table.texts != trained.model.text_table.texts
    for c, name_ in enumerate(NEW):  # every text of class c is about class c
        assert all(name_ in " ".join(t) for t in table.texts[c * table.num_slots:(c + 1) * table.num_slots])
    assert torch.equal(ev.model.prompts.delta, trained.model.prompts.delta)
    grid = table.prompt_grid()
    if name == "DVP_CLS":  # each new description goes to the nearest stored centroid
        centroids = trained.model.text_table.centroids
        assert centroids is not None and torch.equal(table.centroids, centroids)
        expected = nearest_centroid(ev.clip.encode_text([t[0] for t in built]), centroids)
        assert torch.equal(grid.reshape(-1).cpu(), expected)
    if name.startswith("DVP"):  # unseen classes: the uniform PRM row (mean aggregation)
        weight = ev.model.aggregation.weight
        assert torch.equal(weight, torch.full_like(weight, 1.0 / table.num_slots))
        assert not torch.equal(trained.model.aggregation.weight, weight)  # training did re-estimate it
    logits, _ = eval_logits(ev)
    images = torch.cat([b["img"] for b in ev.test_loader]).to(ev.device)
    with torch.no_grad():
        direct = direct_vr_logits(ev, images, built, grid).cpu()
    assert torch.allclose(logits, direct, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", VR_CLASS_BOUND)
def test_a_method_without_a_class_transfer_policy_refuses_other_classes(name, toy_root, toy_descriptions, tmp_path):
    opts = ["DATALOADER.TRAIN_X.BATCH_SIZE", 8, "TEST.NO_TEST", True]
    trained = make_trainer(toy_cfg(name, toy_root, tmp_path / "run", toy_descriptions, epochs=1,
                                   opts=opts + ["DATASET.SUBSAMPLE_CLASSES", "base"]))
    trained.train()
    ev = make_trainer(toy_cfg(name, toy_root, tmp_path / "ev", toy_descriptions, epochs=1,
                              opts=opts + ["DATASET.SUBSAMPLE_CLASSES", "new"]))
    with pytest.raises(CheckpointError, match="cannot score classes other than those it was trained on"):
        ev.load_model(str(tmp_path / "run"), epoch=1)


def test_coop_base_to_new_uses_the_learned_context_with_the_new_names(toy_root, tmp_path):
    from engine import build_trainer, set_random_seed
    from tests.toy_runs import coop_args
    from trainers.coop_model import PromptLearner

    def coop(out, *opts):
        set_random_seed(1)
        return build_trainer(train.setup_cfg(train.build_parser().parse_args(coop_args(
            toy_root, out, "OPTIM.MAX_EPOCH", 2, "OPTIM.LR", 0.02, "DATALOADER.TRAIN_X.BATCH_SIZE", 24, *opts))))

    run = tmp_path / "run"
    trained = coop(run, "DATASET.SUBSAMPLE_CLASSES", "base")
    trained.train()
    ev = coop(tmp_path / "ev", "DATASET.SUBSAMPLE_CLASSES", "new")
    ev.load_model(str(run), epoch=2)
    assert ev.class_policy["trained"] == BASE and ev.class_policy["evaluated"] == NEW
    ctx = trained.model.prompt_learner.ctx.detach()
    assert torch.equal(ev.model.prompt_learner.ctx.detach(), ctx)
    direct = PromptLearner(NEW, ev.model.tower, ev.backbone.tokenizer, n_ctx=4)  # the new names, then the context
    with torch.no_grad():
        direct.ctx.copy_(ctx)
        feats = ev.model.tower(direct(), direct.tokenized_prompts)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        assert torch.allclose(ev.model.text_features(), feats, atol=1e-5)
    # class-specific contexts cannot score other classes: one clear error
    csc = tmp_path / "csc"
    trained_csc = coop(csc, "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.COOP.CSC", "True")
    trained_csc.train()
    with pytest.raises(CheckpointError, match="class-specific contexts"):
        coop(tmp_path / "ev2", "DATASET.SUBSAMPLE_CLASSES", "new", "TRAINER.COOP.CSC", "True").load_model(str(csc), 2)


def test_a_method_without_a_class_policy_refuses_other_classes():
    from types import SimpleNamespace

    from trainers.checkpoints import RunCheckpoints

    class NoPolicy(RunCheckpoints):  # a method added later that declares no CLASS_TRANSFER
        cfg = SimpleNamespace(TRAINER=SimpleNamespace(NAME="NewMethod"))

    with pytest.raises(CheckpointError, match="NewMethod cannot score classes other than those it was trained on"):
        NoPolicy().check_other_classes(BASE, NEW)


def test_nearest_centroid_hand_example():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    points = torch.tensor([[0.9, 0.2], [0.1, 0.8], [-0.4, -0.7], [0.6, 0.5]])
    assert nearest_centroid(points, centroids).tolist() == [0, 1, 2, 0]  # (0.6, 0.5): 0.41 vs 0.61 vs 2.81


# ---- B: resume after kill -9 is exact --------------------------------------------------------------
@pytest.mark.slow  # three train.py subprocesses (about 20 s)
def test_kill9_then_resume_equals_an_uninterrupted_run(toy_root, toy_descriptions, tmp_path):
    """The shipped default (no TRAIN.CHECKPOINT_FREQ): a resumable checkpoint after every epoch, the latest kept."""
    def argv(out):
        return [sys.executable, "train.py"] + toy_argv("DVP_CLS", toy_root, out, toy_descriptions,
                                                       "OPTIM.MAX_EPOCH", 4, "DATALOADER.TRAIN_X.BATCH_SIZE", 3)

    def only_the_latest(killed):
        assert sorted(os.listdir(killed / "vr_model")) == ["checkpoint", "model.pth.tar-2"]

    whole, killed, resumed = kill_and_resume(argv, tmp_path, after_kill=only_the_latest)
    assert "Previous epoch: 2" in resumed.stdout and "epoch [1/4]" not in resumed.stdout
    a, b = (torch.load(d / "vr_model" / "model.pth.tar-4", weights_only=True)["state_dict"] for d in (whole, killed))
    assert set(a) == set(b)
    for key in ("prompts.delta", "aggregation.weight", "aggregation.last_counts", "text_table.prompts"):
        assert torch.equal(a[key], b[key]), key
    assert sorted(os.listdir(killed / "vr_model")) == ["checkpoint", "model.pth.tar-4"]


# ---- B: meaningless settings and broken files: one ERROR line before any work ------------------------
@pytest.mark.parametrize("opts,needle", [
    (["DATASET.NUM_SHOTS", "0"], "DATASET.NUM_SHOTS = 0 would train AR on the whole training set"),
    (["DATASET.NUM_SHOTS", "-1"], "DATASET.NUM_SHOTS = -1 would train AR"),
    (["OPTIM.MAX_EPOCH", "0"], "OPTIM.MAX_EPOCH = 0 trains nothing"),
    (["OPTIM.MAX_EPOCH", "-1"], "OPTIM.MAX_EPOCH = -1 trains nothing"),
])
def test_meaningless_settings_fail_before_work(opts, needle, toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    err = error_of(capsys, train.main(toy_argv("AR", toy_root, tmp_path / "o", toy_descriptions, *opts)))
    assert needle in err
    assert not (tmp_path / "o").exists()  # refused before the run folder, data or CLIP


def test_broken_checkpoints_and_resume_folders_fail_with_one_line(ar_run, toy_root, toy_descriptions, tmp_path,
                                                                  capsys):
    import shutil

    empty = tmp_path / "empty"
    empty.mkdir()
    err = error_of(capsys, train.main(toy_argv("AR", toy_root, tmp_path / "o", toy_descriptions,
                                               extra=["--resume", str(empty)])))
    assert "no checkpoint there" in err

    run = tmp_path / "run"
    shutil.copytree(ar_run, run)
    (run / "results.json").unlink()  # an interrupted run (a finished one is refused before its checkpoints are read)
    pointer = run / "vr_model" / "checkpoint"
    pointer.write_text("")
    err = error_of(capsys, train.main(toy_argv("AR", toy_root, run, toy_descriptions)))
    assert "checkpoint pointer" in err and "is empty" in err
    pointer.write_text("model.pth.tar-2\n")
    (run / "vr_model" / "model.pth.tar-2").write_bytes(b"")
    err = error_of(capsys, train.main(toy_argv("AR", toy_root, run, toy_descriptions)))
    assert "is empty (0 bytes)" in err
    (run / "vr_model" / "model.pth.tar-2").write_bytes(b"PK\x03\x04 not really a checkpoint")
    err = error_of(capsys, train.main(toy_argv("AR", toy_root, tmp_path / "ev", toy_descriptions, extra=[
        "--eval-only", "--model-dir", str(run), "--load-epoch", "2"])))
    assert "cannot be read" in err and "corrupt" in err
    err = error_of(capsys, train.main(toy_argv("AR", toy_root, tmp_path / "w", toy_descriptions,
                                               "MODEL.BACKBONE.NAME", "RN50", "MODEL.BACKBONE.WEIGHTS",
                                               str(tmp_path / "missing.pt"))))
    assert "MODEL.BACKBONE.WEIGHTS names the file" in err


def test_missing_clip_weights_fail_with_one_line_before_the_data(toy_root, tmp_path, capsys, monkeypatch):
    import tests.toy_plugin  # noqa: F401

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hub"))  # nothing cached
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True, raising=False)
    code = train.main(["--root", toy_root, "--output-dir", str(tmp_path / "o"), "--trainer", "ZeroshotCLIP",
                       "--eval-only", "DATASET.NAME", "ToyColors", "MODEL.BACKBONE.NAME", "RN50", "USE_CUDA", "False"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err and captured.err.count("ERROR") == 1, captured.err
    assert 'Could not load the weights "openai" of CLIP model RN50' in captured.err
    assert "Loading CLIP" in captured.out and "# train_x" not in captured.out  # before the data summary


def test_eval_only_without_model_is_labelled_untrained(toy_root, toy_descriptions, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "o"
    assert train.main(toy_argv("AR", toy_root, out, toy_descriptions, extra=["--eval-only"])) == 0
    assert json.loads((out / "results.json").read_text())["untrained"] is True
    assert "evaluated UNTRAINED" in (out / "log.txt").read_text()
    assert json.loads((out / "run.json").read_text())["untrained"] is True


def test_list_flags_leave_trailing_options_alone():
    args = train.build_parser().parse_args(["--trainer", "AR", "--transforms", "random_flip", "normalize",
                                            "OPTIM.MAX_EPOCH", "3", "DATASET.NAME", "ToyColors"])
    cfg = train.setup_cfg(args)
    assert tuple(cfg.INPUT.TRANSFORMS) == ("random_flip", "normalize")
    assert cfg.OPTIM.MAX_EPOCH == 3 and cfg.DATASET.NAME == "ToyColors"


def test_a_name_trained_under_two_labels_is_not_matched_by_name():
    """ImageNet has two 'missile' classes: evaluating a subset that holds the name cannot pick its trained
    texts, prompts and PRM row by name, so it is refused rather than given the last label's."""
    from types import SimpleNamespace

    from trainers.base import VRTrainer

    stub = SimpleNamespace(classnames_in_label_order=lambda: ["missile", "dog"])
    with pytest.raises(CheckpointError, match=r"include \['missile'\], which the training run has under more than"):
        VRTrainer.load_other_classes(stub, "vr_model", {"state_dict": {}}, ["missile", "cat", "missile", "dog"])


def test_dvp_cls_eval_takes_v_from_the_checkpoint(toy_root, toy_descriptions, tmp_path):
    """xd.sh tests an ImageNet DVP_CLS run (v 3) on EuroSAT (its own v 1): with V 0 the evaluation keeps the
    checkpoint's v (old code: 'another prompt (num_prompts 2 here 3)'), says so and records it."""
    import tests.toy_plugin  # noqa: F401

    run, ev = tmp_path / "run", tmp_path / "ev"
    assert train.main(toy_argv("DVP_CLS", toy_root, run, toy_descriptions)) == 0  # V 2
    extra = ["--eval-only", "--model-dir", str(run), "--load-epoch", "2"]
    # V 0: ToyColors' own v is V_DEFAULT (3), not the trained 2
    assert train.main(toy_argv("DVP_CLS", toy_root, ev, toy_descriptions, "TRAINER.DVP_CLS.V", "0",
                               extra=extra)) == 0
    results = json.loads((ev / "results.json").read_text())
    assert results["vr"]["num_prompts"] == 2 and results["vr"]["v"] == 2
    assert results["vr"]["v_source"] == "the evaluated checkpoint"
    assert results["config"]["TRAINER"]["DVP_CLS"]["V"] == 0  # the config as given, not rewritten
    assert "v = 2 is taken from the evaluated checkpoint" in (ev / "log.txt").read_text()
    trained = json.loads((run / "results.json").read_text())
    assert trained["vr"]["v"] == 2 and trained["vr"]["v_source"] == "TRAINER.DVP_CLS.V"
