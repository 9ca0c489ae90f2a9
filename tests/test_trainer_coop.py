"""CoOp on ToyColors with test-tiny: the prompt text forward equals open_clip's encode_text, only the
context learns, the schedule steps per epoch, checkpoints hold the context alone and re-evaluate exactly,
the configs merge, and bad settings fail with one clear message."""
import glob
import json
import math
import os
import re

import pytest
import torch

import tests.toy_plugin  # noqa: F401  (registers ToyColors)
import train
from engine import build_trainer, set_random_seed
from tests.toy_runs import CONFIGS, coop_args
from trainers.coop_model import PromptLearner, TextTower

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # test-tiny: one intra-op thread is faster


def make_trainer(root, out, *opts):
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(coop_args(root, out, *opts))))


@pytest.mark.parametrize("position,csc,template", [
    ("end", False, "a photo of a {}."),
    ("middle", False, "a photo {} of a."),
    ("front", True, "{} a photo of a."),
    ("end", True, "a photo of a {}."),
])
def test_initialised_prompts_equal_clip_text_features(tiny_clip, position, csc, template):
    model, tok = tiny_clip.model, tiny_clip.tokenizer
    names = ["sea_lion", "red-eyed tree frog", "red"]  # multi-token names move as a block
    tower = TextTower(model, "test-tiny")
    learner = PromptLearner(names, tower, tok, n_ctx=16, ctx_init="a photo of a", csc=csc, position=position)
    assert learner.n_ctx == 4 and learner.name_lens == [2, 5, 1]
    assert tuple(learner.ctx.shape) == ((3, 4, 64) if csc else (4, 64))
    with torch.no_grad():
        ours = tower(learner(), learner.tokenized_prompts)
        ref = model.encode_text(tok([template.format(n.replace("_", " ")) for n in names]))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert list(learner.state_dict()) == ["ctx"]


def test_only_the_context_learns(toy_root, tmp_path):
    trainer = make_trainer(toy_root, tmp_path, "TRAINER.COOP.CSC", "True", "TRAINER.COOP.CLASS_TOKEN_POSITION",
                           "middle", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "OPTIM.LR", "0.1")
    learner, clip = trainer.model.prompt_learner, trainer.model.encoder.model
    clip_before = {k: v.clone() for k, v in clip.state_dict().items()}
    ctx_before = learner.ctx.detach().clone()
    assert [p for g in trainer.optim.param_groups for p in g["params"]] == [learner.ctx]
    assert not any(p.requires_grad for p in clip.parameters())
    assert tuple(learner.ctx.shape) == (4, 4, 64)

    trainer.batch_idx, trainer.num_batches = 0, 2  # not the last batch: the LR does not move
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert torch.isfinite(torch.tensor(summary["loss"]))
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.parameters())
    assert not torch.equal(learner.ctx.detach(), ctx_before)
    assert all(torch.equal(v, clip_before[k]) for k, v in clip.state_dict().items())
    assert list(trainer.model.state_dict()) == ["prompt_learner.ctx"]  # CLIP is no submodule


def _epoch_values(text, key, epochs):
    return [float(re.search(rf"epoch \[{e}/{epochs}\] batch \[1/1\] .* {key} ([\d.e+-]+) ", text).group(1))
            for e in range(1, epochs + 1)]


@torch.no_grad()
def _test_logits(trainer):
    trainer.set_model_mode("eval")
    return torch.cat([trainer.model_inference(trainer.parse_batch_test(b)[0]) for b in trainer.test_loader])


@pytest.mark.slow
def test_training_lowers_loss_and_checkpoint_reevaluates_exactly(toy_root, tmp_path, capsys):
    epochs, lr = 6, 0.02
    out = tmp_path / "run"
    # one deterministic full batch per epoch (24 images, no random crop): the loss is the train-set loss
    common = ["INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.TRAIN_X.BATCH_SIZE", "24", "OPTIM.LR", lr,
              "OPTIM.MAX_EPOCH", epochs, "TRAINER.COOP.CSC", "True", "TEST.PER_EPOCH", "True"]
    set_random_seed(1)  # as train.py does for --seed 1
    trainer = make_trainer(toy_root, out, *common)
    trainer.train()
    printed = capsys.readouterr().out
    assert 'PREC "fp16" needs CUDA; running in fp32' in printed or torch.cuda.is_available()
    losses = _epoch_values(printed, "loss", epochs)
    assert losses[-1] < 0.6 * losses[0], losses
    # the LR is stepped once per epoch (printed after the step): 1 constant warm-up epoch, then cosine
    lrs = _epoch_values(printed, "lr", epochs)
    assert lrs[0] == pytest.approx(lr, rel=1e-4)
    assert lrs[-1] == pytest.approx(lr * (1 + math.cos(math.pi * (epochs - 1) / epochs)) / 2, rel=1e-4)
    logits = _test_logits(trainer)
    accuracy = trainer.test()
    curve = json.loads((out / "per_epoch_test.json").read_text())  # the reference's curve, not the headline
    assert [r["epoch"] for r in curve] == list(range(1, epochs + 1)) and curve[-1]["accuracy"] == accuracy

    ckpt = out / "prompt_learner" / f"model.pth.tar-{epochs}"
    saved = torch.load(ckpt, weights_only=True)
    assert list(saved["state_dict"]) == ["ctx"] and tuple(saved["state_dict"]["ctx"].shape) == (4, 4, 64)

    ev = tmp_path / "eval"
    assert train.main(coop_args(toy_root, ev, *common, extra=["--eval-only", "--model-dir", str(out),
                                                               "--load-epoch", str(epochs)])) == 0
    res = json.loads((ev / "results.json").read_text())
    assert res["method"] == "CoOp" and res["coop"]["trainable_params"] == 4 * 4 * 64
    assert res["accuracy"] == pytest.approx(accuracy, abs=1e-9)

    # a checkpoint written by CoOp itself also holds the fixed token vectors: they are ignored
    coop_dir = tmp_path / "coop_style" / "prompt_learner"
    coop_dir.mkdir(parents=True)
    state = dict(saved["state_dict"], token_prefix=torch.zeros(4, 1, 64), token_suffix=torch.zeros(4, 72, 64))
    torch.save(dict(saved, state_dict=state), coop_dir / "model.pth.tar-99")
    fresh = make_trainer(toy_root, tmp_path / "fresh", *common)
    assert not torch.equal(_test_logits(fresh), logits)
    fresh.load_model(str(coop_dir.parent), epoch=99)
    assert torch.equal(_test_logits(fresh), logits)

    # a context of another kind: one clear message naming the setting to match (the checkpoint's record)
    capsys.readouterr()
    assert train.main(coop_args(toy_root, tmp_path / "eval3", *common, "TRAINER.COOP.CSC", "False",
                                extra=["--eval-only", "--model-dir", str(out), "--load-epoch", str(epochs)])) == 1
    err = capsys.readouterr().err
    assert "was made with another prompt (csc True here False)" in err and "Traceback" not in err
    # a checkpoint without a record (older code): the shape check still names the settings to match
    del saved["run"]
    torch.save(saved, coop_dir / "model.pth.tar-98")
    assert train.main(coop_args(toy_root, tmp_path / "eval4", *common, "TRAINER.COOP.CSC", "False",
                                extra=["--eval-only", "--model-dir", str(coop_dir.parent), "--load-epoch", "98"])) == 1
    err = capsys.readouterr().err
    assert "context vectors have shape (4, 4, 64)" in err and "N_CTX / CSC / CTX_INIT" in err


@pytest.mark.parametrize("opts,message", [
    (["TRAINER.COOP.CLASS_TOKEN_POSITION", "back"],
     'Unknown class token position "back" (TRAINER.COOP.CLASS_TOKEN_POSITION). Use one of: end, middle, front.'),
    (["TRAINER.COOP.PREC", "bf16"], 'Unknown precision "bf16" (TRAINER.COOP.PREC). Use one of: fp16, fp32, amp.'),
    (["TRAINER.COOP.N_CTX", "80"], "more than CLIP's context length 77. Lower TRAINER.COOP.N_CTX"),
    (["INPUT.SIZE", "(192, 192)"], "does not match the 224px input of test-tiny"),
])
def test_bad_settings_fail_with_one_clear_message(toy_root, tmp_path, capsys, opts, message):
    assert train.main(coop_args(toy_root, tmp_path, *opts)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not glob.glob(str(tmp_path / "prompt_learner" / "*"))


def test_configs_follow_coops_protocol(tmp_path):
    files = sorted(glob.glob(os.path.join(CONFIGS, "*.yaml")))
    names = {os.path.basename(f)[:-5] for f in files}
    assert {"vit_b16", "vit_b32", "rn50", "rn101", "vit_b16_ep50", "rn50_ep50", "rn50_ep100"} <= names
    backbone = {"vit_b16": "ViT-B/16", "vit_b32": "ViT-B/32", "rn50": "RN50", "rn101": "RN101"}
    for path in files:
        name = os.path.basename(path)[:-5]
        args = train.build_parser().parse_args(["--config-file", path, "--trainer", "CoOp"])
        cfg = train.setup_cfg(args)
        assert backbone[name.split("_ep")[0]] == cfg.MODEL.BACKBONE.NAME
        assert (cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.LR_SCHEDULER) == ("sgd", 0.002, "cosine")
        assert (cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_CONS_LR) == (1, "constant", 1e-5)
        assert {"ep50": 50, "ep100": 100}.get(name.rsplit("_", 1)[-1], 200) == cfg.OPTIM.MAX_EPOCH
        assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 32 and tuple(cfg.INPUT.SIZE) == (224, 224)
        assert cfg.INPUT.INTERPOLATION == "bicubic"
        assert list(cfg.INPUT.TRANSFORMS) == ["random_resized_crop", "random_flip", "normalize"]
        assert tuple(cfg.INPUT.PIXEL_MEAN) == (0.48145466, 0.4578275, 0.40821073)
        node = cfg.TRAINER.COOP
        assert (node.N_CTX, node.CSC, node.CTX_INIT, node.PREC, node.CLASS_TOKEN_POSITION) == (
            16, False, "", "fp16", "end")
