"""MaPLe on ToyColors with test-tiny, and its deep-prompt forward (vr/deep_prompts.py) against open_clip.

The forward with zero-length prompts is open_clip's encode_text / encode_image; with prompts, hooks on the
blocks' inputs show that exactly the prompt positions of blocks 1 .. J-1 are overwritten (text: after SOS;
image: the last n tokens) and blocks from J on get the stream as it is; MaPLe's prompts are the couplings
of its text prompts (checked by hand). Training, checkpoints, --eval-only, new classes, the parameter count
and the backbone errors (before any data is read) go through train.py in-process."""
import json
import os
import re

import pytest
import torch
import torch.nn.functional as F

import tests.toy_plugin  # noqa: F401  (registers ToyColors)
import train
from backbones.tiny import build_tiny_clip
from engine import build_trainer, set_random_seed
from engine.results import write_config
from tests.block_recorder import BlockInputs
from tests.conftest import docs_text
from tests.digits_fixtures import digits_tiny  # noqa: F401  (session fixture)
from trainers.coop_model import TextTower
from trainers.maple import add_deep_prompts, coupling
from trainers.run_loading import read_rgb
from vr.deep_prompts import check_image_forward, encode_image_deep, replacing

ROOT = os.path.dirname(train.__file__)
TINY = ["MODEL.BACKBONE.NAME", "test-tiny", "TRAINER.MAPLE.PROMPT_DEPTH", "2"]  # test-tiny: 2 blocks per tower

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # test-tiny: one intra-op thread is faster


def run_args(root, out, *opts, extra=()):
    return ["--root", str(root), "--output-dir", str(out), "--trainer", "MaPLe", "--seed", "1",
            "--config-file", os.path.join(ROOT, "configs", "trainers", "MaPLe", "vit_b16.yaml"), *extra,
            "DATASET.NAME", "ToyColors", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "16",
            "DATASET.NUM_SHOTS", "16", *TINY, *[str(o) for o in opts]]


def make_trainer(root, out, *opts):
    set_random_seed(1)
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(run_args(root, out, *opts))))


def images(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 224, 224, generator=g)


# ---- the forward against open_clip's own ------------------------------------------------------------
@pytest.mark.parametrize("pool_type", ["tok", "avg"])  # test-tiny's class token; digits-tiny's average pooling
def test_zero_length_prompts_give_open_clips_encoders(tiny_clip, pool_type):
    model = tiny_clip.model if pool_type == "tok" else build_tiny_clip(pool_type="avg").eval()
    tokens = tiny_clip.tokenizer(["a photo of a red square.", "x", "a much longer caption of a thing"])
    tower = TextTower(model)
    empty = torch.zeros(0, tower.width)
    with torch.no_grad():
        ref_text = model.encode_text(tokens)
        for before_block in (None, replacing([], 1), replacing([empty, empty], 1)):
            torch.testing.assert_close(tower(tower.embed(tokens), tokens, before_block=before_block), ref_text,
                                       rtol=1e-5, atol=1e-5)
        x = images()
        width = model.visual.class_embedding.shape[0]
        ref_image = model.encode_image(x)
        torch.testing.assert_close(encode_image_deep(model.visual, x), ref_image, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(encode_image_deep(model.visual, x, torch.zeros(0, width), [torch.zeros(0, width)]),
                                   ref_image, rtol=1e-5, atol=1e-5)


def test_prompts_replace_exactly_their_positions_before_blocks_1_to_j_minus_1():
    """A 3-block CLIP, depth J = 2: block 0 gets the appended (image) / embedded (text) first prompt, block 1
    gets the previous output with the prompt positions overwritten, block 2 the previous output unchanged."""
    model = build_tiny_clip(layers=3).eval()
    n, width = 2, 64
    g = torch.Generator().manual_seed(3)
    first, second = torch.randn(n, width, generator=g), torch.randn(n, width, generator=g)
    x = images(2)
    plain = BlockInputs(model.visual.transformer)
    with torch.no_grad():
        model.encode_image(x)
    plain.remove()
    rec = BlockInputs(model.visual.transformer)
    with torch.no_grad():
        out = encode_image_deep(model.visual, x, first, [second])
    rec.remove()
    num_image_tokens = plain.inputs[0].shape[1]
    assert rec.inputs[0].shape[1] == num_image_tokens + n
    # ln_pre is per token: the image tokens are open_clip's, the prompt tokens are ln_pre(first)
    torch.testing.assert_close(rec.inputs[0][:, :num_image_tokens], plain.inputs[0])
    torch.testing.assert_close(rec.inputs[0][:, num_image_tokens:], model.visual.ln_pre(first).expand(2, -1, -1))
    torch.testing.assert_close(rec.inputs[1][:, :num_image_tokens], rec.outputs[0][:, :num_image_tokens])
    torch.testing.assert_close(rec.inputs[1][:, num_image_tokens:], second.expand(2, -1, -1))
    assert not torch.allclose(rec.outputs[0][:, num_image_tokens:], second.expand(2, -1, -1))  # really replaced
    assert torch.equal(rec.inputs[2], rec.outputs[1])  # block J = 2: untouched
    # the features are CLS's after ln_post and proj (the prompt tokens are dropped before pooling)
    torch.testing.assert_close(out, model.visual.ln_post(rec.outputs[2][:, 0]) @ model.visual.proj)

    tower = TextTower(model)
    tokens = tokenize(["a photo of a red square."])
    rec = BlockInputs(model.transformer)
    with torch.no_grad():
        tower(tower.embed(tokens), tokens, before_block=replacing([second], 1))
    rec.remove()
    torch.testing.assert_close(rec.inputs[0], tower.embed(tokens) + model.positional_embedding)
    torch.testing.assert_close(rec.inputs[1][:, 1:1 + n], second.unsqueeze(0))
    torch.testing.assert_close(rec.inputs[1][:, [0, *range(1 + n, 77)]], rec.outputs[0][:, [0, *range(1 + n, 77)]])
    assert torch.equal(rec.inputs[2], rec.outputs[1])


def test_image_prompts_are_dropped_before_average_pooling():
    """digits-tiny's pooling: the mean over the image tokens of the last block (CLS and prompts left out)."""
    model = build_tiny_clip(pool_type="avg").eval()
    g = torch.Generator().manual_seed(4)
    first, second = torch.randn(2, 64, generator=g), torch.randn(2, 64, generator=g)
    x = images(2)
    rec = BlockInputs(model.visual.transformer)
    with torch.no_grad():
        out = encode_image_deep(model.visual, x, first, [second])
    rec.remove()
    last = rec.outputs[1]
    torch.testing.assert_close(out, model.visual.ln_post(last[:, 1:-2]).mean(1) @ model.visual.proj)
    assert not torch.allclose(out, model.visual.ln_post(last[:, 1:]).mean(1) @ model.visual.proj)


def test_build_time_check_catches_a_forward_that_differs_from_open_clip(monkeypatch):
    """What MaPLe runs at build (as CoOp's text check): another open_clip layout fails before training."""
    model = build_tiny_clip().eval()
    check_image_forward(model, 224, "test-tiny")  # the real forward passes
    monkeypatch.setattr(model.visual, "ln_pre", torch.nn.Identity())  # a tower whose embedding differs from ours
    monkeypatch.setattr(model, "encode_image", lambda x: build_tiny_clip().eval().encode_image(x))
    with pytest.raises(RuntimeError, match="differs from open_clip's encode_image for test-tiny"):
        check_image_forward(model, 224, "test-tiny")


def tokenize(texts):
    import open_clip

    return open_clip.get_tokenizer("ViT-B-16")(texts)


def test_maples_prompts_are_the_couplings_of_its_text_prompts(toy_root, tmp_path):
    """MaPLe's model on test-tiny (J = 2) by hand: text positions 1-2 start as "a photo", "of a {name}." stays;
    the image gets W_0 P_0 + b_0 before ln_pre and W_1 P_1 + b_1 before block 1; logits = s cos."""
    trainer = make_trainer(toy_root, tmp_path)
    model, learner = trainer.model, trainer.model.prompt_learner
    clip, tok = model.encoder.model, model.encoder.tokenizer
    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    assert torch.equal(learner.tokenized_prompts, tok([f"a photo of a {n}." for n in names]))
    words = clip.token_embedding(tok(["a photo of a"]))[0]
    torch.testing.assert_close(learner.ctx.detach(), words[1:3])  # P_0 = "a", "photo"
    torch.testing.assert_close(learner()[:, 3:5], words[3:5].expand(len(names), -1, -1))  # "of a": fixed
    assert learner.compound_prompts_text[0].std().item() == pytest.approx(0.02, rel=0.3)

    x = trainer.parse_batch_test(next(iter(trainer.test_loader)))[0][:2]
    p0, p1 = learner.ctx.detach(), learner.compound_prompts_text[0].detach()
    f0, f1 = learner.proj, learner.compound_prompt_projections[0]
    text, image = BlockInputs(clip.transformer), BlockInputs(clip.visual.transformer)
    with torch.no_grad():
        logits = model(x)
    text.remove(), image.remove()
    torch.testing.assert_close(text.inputs[0][:, 1:3], (p0 + clip.positional_embedding[1:3]).expand(len(names), -1, -1))
    torch.testing.assert_close(text.inputs[1][:, 1:3], p1.expand(len(names), -1, -1))
    with torch.no_grad():
        first_image_prompt = clip.visual.ln_pre(p0 @ f0.weight.t() + f0.bias)
        torch.testing.assert_close(image.inputs[0][:, -2:], first_image_prompt.expand(2, -1, -1))
        torch.testing.assert_close(image.inputs[1][:, -2:], (p1 @ f1.weight.t() + f1.bias).expand(2, -1, -1))
        f = F.normalize(clip.visual.ln_post(image.outputs[1][:, 0]) @ clip.visual.proj, dim=-1)
        pooled = clip.ln_final(text.outputs[1])[torch.arange(len(names)), learner.tokenized_prompts.argmax(-1)]
        w = F.normalize(pooled @ clip.text_projection, dim=-1)
    torch.testing.assert_close(logits, clip.logit_scale.exp() * f @ w.t(), rtol=1e-4, atol=1e-4)


# ---- parameters --------------------------------------------------------------------------------------
def hand_count(n_ctx, depth, text_width, vision_width):
    return depth * n_ctx * text_width + depth * (text_width * vision_width + vision_width)


def test_trainable_parameters_are_the_prompts_and_couplings(toy_root, tmp_path):
    trainer = make_trainer(toy_root, tmp_path)
    learner = trainer.model.prompt_learner
    assert trainer.trainable_params == hand_count(2, 2, 64, 64) == 8_576
    assert {id(p) for g in trainer.optim.param_groups for p in g["params"]} == {id(p) for p in learner.parameters()}
    assert not any(p.requires_grad for p in trainer.model.encoder.model.parameters())
    # one training step reaches every prompt and coupling (and nothing of CLIP)
    batch = next(iter(trainer.train_loader_x))
    trainer.batch_idx, trainer.num_batches = 0, 2
    trainer.set_model_mode("train")
    trainer.forward_backward(batch)
    for name, p in learner.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in trainer.model.encoder.model.parameters())


def test_loads_a_released_style_checkpoint_with_maples_names(toy_root, tmp_path):
    """MaPLe's own checkpoints: fp16 tensors under the same names, plus the fixed token vectors (dropped)."""
    trainer = make_trainer(toy_root, tmp_path)
    learner = trainer.model.prompt_learner
    state = {k: torch.randn_like(v).half() for k, v in learner.state_dict().items()}
    learner.load_state_dict({**state, "token_prefix": torch.zeros(4, 1, 64), "token_suffix": torch.zeros(4, 74, 64)})
    for key, value in learner.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, state[key].float()), key
    with pytest.raises(RuntimeError, match="other"):  # anything else unexpected still fails
        learner.load_state_dict(dict(state, other=torch.zeros(1)))


def test_docs_state_the_vit_b16_count():
    """ViT-B/16: text width 512, image width 768, 2 tokens, depth 9 (baselines.md: about 3.55M)."""
    import torch.nn as nn

    learner = nn.Module()
    learner.ctx = nn.Parameter(torch.zeros(2, 512))
    add_deep_prompts(learner, 9, 512, 768)
    count = sum(p.numel() for p in learner.parameters())
    assert count == hand_count(2, 9, 512, 768) == 3_555_072
    assert sum(p.numel() for p in coupling(512, 768).parameters()) == 512 * 768 + 768
    assert f"{count:,} parameters at ViT-B/16" in docs_text()


# ---- training, checkpoints, eval-only, new classes -----------------------------------------------------
def _epoch_losses(text, epochs):
    return [float(re.search(rf"epoch \[{e}/{epochs}\] batch \[1/1\] .* loss ([\d.e+-]+) ", text).group(1))
            for e in range(1, epochs + 1)]


def test_trains_saves_what_it_learned_and_reevaluates_on_base_and_new(toy_root, tmp_path, capsys):
    epochs = 6
    out = tmp_path / "run"
    # one deterministic full batch of the base classes per epoch (no random crop): the train-set loss;
    # epoch 1 is the constant warm-up at 1e-5
    common = ["INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.TRAIN_X.BATCH_SIZE", "24", "OPTIM.LR", "0.01",
              "OPTIM.MAX_EPOCH", epochs, "DATASET.SUBSAMPLE_CLASSES", "base"]
    trainer = make_trainer(toy_root, out, *common)
    trainer.train()
    losses = _epoch_losses(capsys.readouterr().out, epochs)
    assert losses[-1] < 0.6 * losses[0] and losses[-1] < min(losses[:4]), losses  # measured: 0.40x
    accuracy = trainer.test()

    saved = torch.load(out / "prompt_learner" / f"model.pth.tar-{epochs}", weights_only=True)["state_dict"]
    assert sorted(saved) == ["compound_prompt_projections.0.bias", "compound_prompt_projections.0.weight",
                             "compound_prompts_text.0", "ctx", "proj.bias", "proj.weight"]  # no CLIP weight
    assert sum(v.numel() for v in saved.values()) == trainer.trainable_params == 8_576

    load = ["--eval-only", "--model-dir", str(out), "--load-epoch", str(epochs)]
    ev = tmp_path / "eval_base"
    assert train.main(run_args(toy_root, ev, *common, extra=load)) == 0
    res = json.loads((ev / "results.json").read_text())
    assert res["method"] == "MaPLe" and res["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert res["trainable_params"] == 8_576 and res["maple"]["prompt_depth"] == 2
    assert res["classes"]["policy"] == "same classes: the checkpoint as trained"

    # new classes: the same checkpoint scores the other half of the class names
    new_opts = [*common[:-1], "new"]
    ev_new = tmp_path / "eval_new"
    assert train.main(run_args(toy_root, ev_new, *new_opts, extra=load)) == 0
    res_new = json.loads((ev_new / "results.json").read_text())
    from trainers.maple import MaPLe

    assert res_new["classes"]["policy"] == MaPLe.CLASS_TRANSFER
    assert not set(res_new["classes"]["evaluated"]) & set(res_new["classes"]["trained"])
    fresh = make_trainer(toy_root, tmp_path / "new", *new_opts)
    fresh.load_model(str(out), epoch=epochs)
    for key, value in saved.items():
        assert torch.equal(fresh.model.prompt_learner.state_dict()[key], value), key
    fresh.set_model_mode("eval")
    with torch.no_grad():
        logits = torch.cat([fresh.model_inference(fresh.parse_batch_test(b)[0]) for b in fresh.test_loader])
    labels = torch.cat([b["label"] for b in fresh.test_loader])
    assert res_new["accuracy"] == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item(), abs=1e-6)

    # scripts/predict.py rebuilds the run and gives the trained model's own top class and probability
    import importlib.util

    spec = importlib.util.spec_from_file_location("_maple_predict", os.path.join(ROOT, "scripts", "predict.py"))
    predict = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(predict)
    write_config(trainer.cfg, str(out))  # what train.py writes beside the checkpoints (trained in-process here)
    paths = [d.impath for d in trainer.dm.dataset.test[:3]]
    capsys.readouterr()
    assert predict.main([str(out), *paths, "--json", "--device", "cpu"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    tfm = trainer.test_loader.dataset.transform
    trainer.set_model_mode("eval")
    with torch.no_grad():
        probs = torch.softmax(trainer.model_inference(torch.stack([tfm(read_rgb(p)) for p in paths])), dim=1)
    for rec, row in zip(predictions, probs, strict=False):
        assert rec["top"][0]["class"] == trainer.dm.dataset.classnames[int(row.argmax())]
        assert rec["top"][0]["probability"] == pytest.approx(float(row.max()), abs=1e-5)


# measured (seed 1, demo configs, 16 shots, low-contrast digits): zero-shot 12.1, MaPLe 35.8
@pytest.mark.slow
def test_beats_zero_shot_on_shifted_digits(digits_tiny, tmp_path):  # noqa: F811
    accuracy = {}
    for name in ("ZeroshotCLIP", "MaPLe"):
        configs = os.path.join(ROOT, "configs")
        argv = ["--root", str(tmp_path / "data"), "--trainer", name, "--seed", "1",
                "--output-dir", str(tmp_path / name), *(["--eval-only"] if name == "ZeroshotCLIP" else []),
                "--dataset-config-file", os.path.join(configs, "datasets", "digits_lowcontrast.yaml"),
                "--config-file", os.path.join(configs, "trainers", name, "demo.yaml"), "DATASET.NUM_SHOTS", "16",
                "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "1000", "USE_CUDA", "False"]
        (tmp_path / "data").mkdir(exist_ok=True)
        assert train.main(argv) == 0
        accuracy[name] = json.loads((tmp_path / name / "results.json").read_text())["accuracy"]
    assert accuracy["MaPLe"] >= accuracy["ZeroshotCLIP"] + 12.0, accuracy


# ---- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts,message", [
    (["MODEL.BACKBONE.NAME", "test-tiny-rn"],
     "MaPLe prompts the transformers of both CLIP encoders, and the backbone test-tiny-rn: its image tower is "
     "ModifiedResNet, not a transformer"),
    (["TRAINER.MAPLE.PROMPT_DEPTH", "9"], "TRAINER.MAPLE.PROMPT_DEPTH 9 exceeds the blocks of test-tiny (2 text, "
                                          "2 image): set it to at most 2."),
    (["TRAINER.MAPLE.N_CTX", "5"], 'TRAINER.MAPLE.N_CTX 5 exceeds the 4 tokens of TRAINER.MAPLE.CTX_INIT "a photo '
                                   'of a"'),
    (["TRAINER.MAPLE.PROMPT_DEPTH", "0"], "TRAINER.MAPLE.PROMPT_DEPTH must be at least 1"),
])
def test_bad_backbone_or_settings_fail_before_any_data_is_read(tmp_path, capsys, opts, message):
    """The data root is empty: an error about the dataset would mean the data was read first."""
    empty = tmp_path / "no_data"
    empty.mkdir()
    assert train.main(run_args(empty, tmp_path / "out", *opts)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("ERROR")]) == 1


def test_configs_state_the_papers_protocol_and_leave_out_resnets():
    for name, backbone in {"vit_b16": "ViT-B/16", "vit_b32": "ViT-B/32"}.items():
        path = os.path.join(ROOT, "configs", "trainers", "MaPLe", f"{name}.yaml")
        cfg = train.setup_cfg(train.build_parser().parse_args(["--config-file", path, "--trainer", "MaPLe"]))
        assert backbone == cfg.MODEL.BACKBONE.NAME
        assert (cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.MAX_EPOCH) == ("sgd", 0.0035, "cosine",
                                                                                              5)
        assert (cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_CONS_LR) == (1, "constant", 1e-5)
        assert (cfg.OPTIM.MOMENTUM, cfg.OPTIM.WEIGHT_DECAY) == (0.9, 5e-4)
        assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 4
        node = cfg.TRAINER.MAPLE
        assert (node.N_CTX, node.CTX_INIT, node.PREC, node.PROMPT_DEPTH) == (2, "a photo of a", "fp16", 9)
    xd = os.path.join(ROOT, "configs", "trainers", "MaPLe", "vit_b16_xd.yaml")  # MaPLe's cross-dataset config
    cfg = train.setup_cfg(train.build_parser().parse_args(["--config-file", xd, "--trainer", "MaPLe"]))
    assert (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.TRAINER.MAPLE.PROMPT_DEPTH, cfg.DATALOADER.TRAIN_X.BATCH_SIZE) == (
        0.0026, 2, 3, 4)
    demo = os.path.join(ROOT, "configs", "trainers", "MaPLe", "demo.yaml")
    cfg = train.setup_cfg(train.build_parser().parse_args(["--config-file", demo, "--trainer", "MaPLe"]))
    assert cfg.MODEL.BACKBONE.NAME == "digits-tiny" and cfg.TRAINER.MAPLE.PROMPT_DEPTH == 2
    # no ResNet configs: a sweep asking for one stops before anything runs, naming the configs there are
    from runs.jobs import Job, UsageError, validate

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        listing = "MaPLe has: demo, vit_b16, vit_b16_xd, vit_b32"
        with pytest.raises(UsageError, match=f"unknown config for MaPLe 'rn50'.*{listing}"):
            validate([Job("maple", "dtd", 16, "rn50", 1)])
    finally:
        os.chdir(cwd)


def test_the_deeper_couplings_start_as_clones_of_one_layer_as_maple_does():
    """MaPLe's code builds one Linear and deep-copies it for F_1 .. F_{J-1}; F_0 (proj) is drawn on its own."""
    import torch.nn as nn

    from trainers.maple import add_deep_prompts

    learner = nn.Module()
    learner.ctx = nn.Parameter(torch.zeros(2, 8))
    add_deep_prompts(learner, depth=4, text_width=8, vision_width=12)
    first, *others = learner.compound_prompt_projections
    assert len(others) == 2 and all(torch.equal(o.weight, first.weight) and torch.equal(o.bias, first.bias)
                                    for o in others)
    assert all(o.weight is not first.weight for o in others)  # clones, not shared parameters
    assert not torch.equal(learner.proj.weight, first.weight)
