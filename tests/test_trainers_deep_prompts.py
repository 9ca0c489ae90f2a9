"""IVLP, VPT (deep) and PromptSRC on ToyColors with test-tiny (2 blocks per tower), and their configs.

By hand: which positions each tower's prompts replace before which block, VPT's fixed text, PromptSRC's loss
(CE + the two L1 terms + the KL to the frozen CLIP's logits) and its Gaussian aggregation (the model after
the last epoch is the g_e-weighted sum of the epochs' prompts). Through train.py: training, the saved
prompts, --eval-only on the trained and on unseen classes, exact resume after kill -9 (GPA's running sum
included), errors before any data is read. Configs against the official values; counts against the docs."""
import json
import math
import os
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import tests.toy_plugin  # noqa: F401  (registers ToyColors)
import train
from engine import build_trainer, set_random_seed
from tests.block_recorder import BlockInputs
from tests.conftest import SHARED, docs_text, kill_and_resume
from trainers.gpa import GaussianAggregate, gaussian_weights
from trainers.independent_prompts import add_vision_prompts, deep_prompt_count, random_prompts
from trainers.promptsrc import PROMPTSRC_TEMPLATES, ensemble_text_features

ROOT = os.path.dirname(train.__file__)
METHODS = ("IVLP", "VPT", "PromptSRC")
NODES = {"IVLP": "IVLP", "VPT": "VPT", "PromptSRC": "PROMPTSRC"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # test-tiny: one intra-op thread is faster


def depth_opts(method, depth=2):
    node = f"TRAINER.{NODES[method]}"
    text = [] if method == "VPT" else [f"{node}.PROMPT_DEPTH_TEXT", depth]
    return [f"{node}.PROMPT_DEPTH_VISION", depth, *text]


def run_args(method, root, out, *opts, extra=()):
    return ["--root", str(root), "--output-dir", str(out), "--trainer", method, "--seed", "1",
            "--config-file", os.path.join(ROOT, "configs", "trainers", method, "vit_b16.yaml"), *extra,
            "DATASET.NAME", "ToyColors", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "16",
            "DATASET.NUM_SHOTS", "16", "MODEL.BACKBONE.NAME", "test-tiny", *map(str, depth_opts(method)),
            *[str(o) for o in opts]]


def make_trainer(method, root, out, *opts):
    set_random_seed(1)
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(run_args(method, root, out, *opts))))


# ---- the forward by hand -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_prompts_replace_their_positions_and_the_logits_are_s_cos(method, toy_root, tmp_path):
    trainer = make_trainer(method, toy_root, tmp_path)
    model, learner = trainer.model, trainer.model.prompt_learner
    clip, tok = model.encoder.model, model.encoder.tokenizer
    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    x = trainer.parse_batch_test(next(iter(trainer.test_loader)))[0][:2]
    n_v = int(trainer.node.N_CTX_VISION)
    text, image = BlockInputs(clip.transformer), BlockInputs(clip.visual.transformer)
    with torch.no_grad():
        logits = model(x)
    text.remove(), image.remove()
    with torch.no_grad():  # image: ln_pre(first prompt) appended, the second replaces the last n_v tokens
        torch.testing.assert_close(image.inputs[0][:, -n_v:], clip.visual.ln_pre(learner.vision_ctx).expand(2, -1, -1))
        torch.testing.assert_close(image.inputs[1][:, -n_v:], learner.vision_prompts[0].expand(2, -1, -1))
        torch.testing.assert_close(image.inputs[1][:, :-n_v], image.outputs[0][:, :-n_v])
        f = F.normalize(clip.visual.ln_post(image.outputs[1][:, 0]) @ clip.visual.proj, dim=-1)
    if method == "VPT":  # the fixed text "a photo of a {name}." (no text block is run by the model)
        assert not text.inputs and not any(k == "ctx" for k, _ in learner.named_parameters())
        w = F.normalize(clip.encode_text(tok([f"a photo of a {n}." for n in names])), dim=-1).detach()
    else:  # text: "a photo of a {name}." with its first n_t tokens learned; positions 1.. replaced before block 1
        n_t = int(trainer.node.N_CTX_TEXT)
        assert torch.equal(learner.tokenized_prompts, tok([f"a photo of a {n}." for n in names]))
        start = clip.token_embedding(tok(["a photo of a"]))[0, 1:1 + n_t]
        torch.testing.assert_close(learner.ctx.detach(), start)
        rows = len(names)
        first = (learner.ctx + clip.positional_embedding[1:1 + n_t]).detach()
        torch.testing.assert_close(text.inputs[0][:, 1:1 + n_t], first.expand(rows, -1, -1))
        torch.testing.assert_close(text.inputs[1][:, 1:1 + n_t], learner.text_prompts[0].detach().expand(rows, -1, -1))
        with torch.no_grad():
            pooled = clip.ln_final(text.outputs[1])[torch.arange(len(names)), learner.tokenized_prompts.argmax(-1)]
            w = F.normalize(pooled @ clip.text_projection, dim=-1)
    torch.testing.assert_close(logits, clip.logit_scale.exp() * f @ w.t(), rtol=1e-4, atol=1e-4)


def test_ivlp_with_more_tokens_than_ctx_init_starts_random_as_the_official_code(toy_root, tmp_path):
    """The official rule: CTX_INIT's embeddings only while N_CTX_TEXT <= its tokens; else "X X X X X" at N(0, .02)."""
    learner = make_trainer("IVLP", toy_root, tmp_path, "TRAINER.IVLP.N_CTX_TEXT", 5).model.prompt_learner
    assert learner.ctx.shape == (5, 64) and learner.ctx.std().item() == pytest.approx(0.02, rel=0.3)


# ---- PromptSRC: the loss and GPA by hand -----------------------------------------------------------------
def test_promptsrc_loss_is_ce_plus_the_three_self_regulating_terms(toy_root, tmp_path):
    trainer = make_trainer("PromptSRC", toy_root, tmp_path)
    model, clip = trainer.model, trainer.model.encoder.model
    # the frozen text: mean of 60 unnormalised template features (open_clip's first 60 = PromptSRC's list)
    assert len(PROMPTSRC_TEMPLATES) == 60 and PROMPTSRC_TEMPLATES[0] == "a bad photo of a {}."
    assert trainer._frozen_text is None  # encoded at its first use: an evaluation never encodes its 60 x C texts
    names = trainer.dm.dataset.classnames
    with torch.no_grad():
        mean = torch.stack([clip.encode_text(model.encoder.tokenizer([t.format(n) for n in names]))
                            for t in PROMPTSRC_TEMPLATES]).mean(0)
    torch.testing.assert_close(trainer.frozen_text, F.normalize(mean, dim=-1))
    torch.testing.assert_close(ensemble_text_features(model.encoder, names, PROMPTSRC_TEMPLATES[:1]),
                               model.encoder.encode_text([PROMPTSRC_TEMPLATES[0].format(n) for n in names]))

    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)
    trainer.set_model_mode("train")
    logits = model(image)
    loss = trainer.compute_loss(logits, label)
    f_prompted, w_prompted = model.last_features
    with torch.no_grad():
        f = F.normalize(clip.encode_image(image), dim=-1)
        s = clip.logit_scale.exp()
        p_zs = torch.softmax(s * f @ trainer.frozen_text.t(), 1)
        kl = (p_zs * (p_zs.log() - torch.log_softmax(logits, 1))).sum() / logits.numel()
        expected = (F.cross_entropy(logits, label) + 10 * (f_prompted - f).abs().mean()
                    + 25 * (w_prompted - trainer.frozen_text).abs().mean() + kl)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert kl.item() > 0 and (f_prompted - f).abs().mean() > 0  # the prompts moved the features


def test_gaussian_weights_by_hand():
    g = gaussian_weights(20, 15, 1)
    dens = [math.exp(-0.5 * (e - 15) ** 2) for e in range(1, 21)]
    assert g == pytest.approx([d / sum(dens) for d in dens]) and sum(g) == pytest.approx(1.0)
    assert max(range(20), key=g.__getitem__) == 14  # epoch 15
    with pytest.raises(ValueError, match="standard deviation must be positive"):
        gaussian_weights(5, 2, 0)


def test_gpa_sums_each_epoch_once_and_loads_the_aggregate():
    p = nn.Parameter(torch.zeros(2, 3))
    gpa = GaussianAggregate({"p": p}, [0.25, 0.75])
    with torch.no_grad():
        p.fill_(1.0)
    gpa.add(1)
    with pytest.raises(RuntimeError, match="epoch 1 added after 1 epochs"):
        gpa.add(1)
    with torch.no_grad():
        p.fill_(3.0)
    gpa.add(2)
    gpa.load_into_params()
    assert torch.equal(p.detach(), torch.full((2, 3), 0.25 * 1 + 0.75 * 3))
    assert sorted(gpa.state_dict()) == ["epochs_added", "sum_p"]


def test_promptsrc_builds_for_an_evaluation_with_no_epochs(toy_root, tmp_path):
    """OPTIM.MAX_EPOCH 0 (an evaluation): the GPA weights are those of one epoch, as the config check says."""
    trainer = make_trainer("PromptSRC", toy_root, tmp_path, "OPTIM.MAX_EPOCH", 0)
    assert len(trainer.model.prompt_learner.gpa.weights) == 1


def test_promptsrc_tests_the_gaussian_aggregate_of_its_epochs(toy_root, tmp_path, monkeypatch):
    """After the last epoch the prompts are sum_e g_e * (the prompts after epoch e); the last checkpoint holds
    them, earlier checkpoints the epoch's own prompts."""
    epochs = 3
    out = tmp_path / "run"
    trainer = make_trainer("PromptSRC", toy_root, out, "OPTIM.MAX_EPOCH", epochs, "OPTIM.LR", 0.05,
                           "TRAIN.CHECKPOINT_FREQ", 1, "TRAINER.PROMPTSRC.GPA_MEAN", 2.0, "TEST.NO_TEST", True)
    learner = trainer.model.prompt_learner
    seen = []
    add = GaussianAggregate.add
    monkeypatch.setattr(GaussianAggregate, "add", lambda self, e: (seen.append(
        {k: v.detach().clone() for k, v in learner.named_parameters()}), add(self, e)))
    trainer.train()
    g = gaussian_weights(epochs, 2.0, 1.0)
    for name, p in learner.named_parameters():
        expected = sum(w * s[name] for w, s in zip(g, seen, strict=False))
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(seen[-1][name], seen[0][name])  # the prompts did move
    for e in range(1, epochs + 1):
        saved = torch.load(out / "prompt_learner" / f"model.pth.tar-{e}", weights_only=True)["state_dict"]
        want = dict(learner.named_parameters()) if e == epochs else seen[e - 1]
        assert all(torch.equal(saved[k], want[k].detach()) for k in want)


# ---- parameters ----------------------------------------------------------------------------------------
COUNTS_AT_VIT_B16 = {  # (n_t, J_t, n_v, J_v) of each vit_b16 config -> baselines-2.md's counts
    "IVLP": ((2, 12, 2, 12), 30_720), "VPT": ((0, 0, 8, 12), 73_728), "PromptSRC": ((4, 9, 4, 9), 46_080)}


@pytest.mark.parametrize("method", METHODS)
def test_trainable_parameters_are_the_prompts_and_readme_states_the_count(method, toy_root, tmp_path):
    trainer = make_trainer(method, toy_root, tmp_path)
    node = trainer.node
    n_t, j_t = (0, 0) if method == "VPT" else (int(node.N_CTX_TEXT), 2)
    assert trainer.trainable_params == deep_prompt_count(n_t, j_t, int(node.N_CTX_VISION), 2, 64, 64)
    params = {id(p) for p in trainer.model.prompt_learner.parameters()}
    assert {id(p) for g in trainer.optim.param_groups for p in g["params"]} == params
    assert not any(p.requires_grad for p in trainer.model.encoder.model.parameters())
    # ViT-B/16 (text width 512, image width 768): the count the docs state, on the built tensors
    (n_t, j_t, n_v, j_v), count = COUNTS_AT_VIT_B16[method]
    learner = nn.Module()
    learner.text = nn.ParameterList(random_prompts(j_t, n_t, 512, "cpu"))  # ctx + text_prompts
    add_vision_prompts(learner, n_v, j_v, 768, "cpu")
    assert sum(p.numel() for p in learner.parameters()) == deep_prompt_count(n_t, j_t, n_v, j_v) == count
    docs = docs_text()
    assert f"`{method}` | deep prompts" in docs and f"{count:,} parameters at ViT-B/16" in docs


# ---- training, eval-only, new classes, resume --------------------------------------------------------------
COMMON = ["INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.TRAIN_X.BATCH_SIZE", 8, "OPTIM.LR", 0.05,
          "OPTIM.MAX_EPOCH", 3, "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.PROMPTSRC.GPA_MEAN", 2.0]


def opts_for(method, common):
    """COMMON without another method's keys."""
    out = []
    for key, value in zip(common[::2], common[1::2], strict=False):
        if not key.startswith("TRAINER.") or key.startswith(f"TRAINER.{NODES[method]}."):
            out += [key, value]
    return out


@pytest.mark.parametrize("method", [m if m == "PromptSRC" else pytest.param(m, marks=pytest.mark.slow)
                                    for m in METHODS])
def test_trains_saves_the_prompts_and_reevaluates_on_base_and_new(method, toy_root, tmp_path):
    out = tmp_path / "run"
    common = opts_for(method, COMMON)
    assert train.main(run_args(method, toy_root, out, *common)) == 0
    res = json.loads((out / "results.json").read_text())
    saved = torch.load(out / "prompt_learner" / "model.pth.tar-3", weights_only=True)["state_dict"]
    learned = {k for k in saved if not k.startswith("gpa.")}
    assert sum(saved[k].numel() for k in learned) == res["trainable_params"]
    assert {k.split(".")[0] for k in learned} <= {"ctx", "text_prompts", "vision_ctx", "vision_prompts"}
    assert res[NODES[method].lower()]["deviations"]  # the stated policies are in results.json

    load = ["--eval-only", "--model-dir", str(out), "--load-epoch", "3"]
    assert train.main(run_args(method, toy_root, tmp_path / "ev", *common, extra=load)) == 0
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ev["accuracy"] == pytest.approx(res["accuracy"], abs=1e-9)
    assert ev["classes"]["policy"] == "same classes: the checkpoint as trained"

    new = [("new" if previous == "DATASET.SUBSAMPLE_CLASSES" else v)
           for previous, v in zip([None] + common, common, strict=False)]
    assert train.main(run_args(method, toy_root, tmp_path / "new", *new, extra=load)) == 0
    ev_new = json.loads((tmp_path / "new" / "results.json").read_text())
    from engine import TRAINER_REGISTRY

    assert ev_new["classes"]["policy"] == TRAINER_REGISTRY.get(method).CLASS_TRANSFER
    assert ev_new["classes"]["evaluated"] == ["blue", "yellow"] and ev_new["classes"]["trained"] == ["red", "green"]


@pytest.mark.slow  # three train.py subprocesses
def test_promptsrc_resumes_exactly_after_kill9_gpa_sum_included(toy_root, tmp_path):
    def argv(out):
        return [sys.executable, "train.py", *run_args("PromptSRC", toy_root, out, *COMMON[:6],
                                                       "OPTIM.MAX_EPOCH", 4, "TRAINER.PROMPTSRC.GPA_MEAN", 2.0)]

    whole, killed, resumed = kill_and_resume(argv, tmp_path)
    assert "Previous epoch: 2" in resumed.stdout and "epoch [1/4]" not in resumed.stdout
    a, b = (torch.load(d / "prompt_learner" / "model.pth.tar-4", weights_only=True)["state_dict"]
            for d in (whole, killed))
    assert set(a) == set(b) and "gpa.sum_ctx" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    accuracy = [json.loads((d / "results.json").read_text())["accuracy"] for d in (whole, killed)]
    assert accuracy[0] == accuracy[1]


@pytest.mark.parametrize("method,prec", [(m, p) if (m, p) == ("IVLP", "fp16") else
                                         pytest.param(m, p, marks=pytest.mark.slow)
                                         for m in ("IVLP", "PromptSRC") for p in ("fp32", "fp16", "amp")])
def test_every_precision_trains_a_step(method, prec, toy_root, tmp_path):
    """fp16 / amp are CUDA autocast (on a CPU: fp32 with a note); each runs a step that moves every prompt."""
    trainer = make_trainer(method, toy_root, tmp_path, f"TRAINER.{NODES[method]}.PREC", prec)
    learner = trainer.model.prompt_learner
    before = {k: v.detach().clone() for k, v in learner.named_parameters()}
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 1
    trainer.set_model_mode("train")
    trainer.optim.param_groups[0]["lr"] = 0.1
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert math.isfinite(summary["loss"])
    assert all(not torch.equal(before[k], v) for k, v in learner.named_parameters())


@pytest.mark.parametrize("method", METHODS)
def test_a_half_precision_autocast_step_runs_on_the_cpu(method, toy_root, tmp_path):
    """What PREC fp16 does on CUDA (fp32 prompts entering a half-precision stream), with CPU bfloat16 autocast:
    finite loss, fp32 gradients reaching every prompt."""
    trainer = make_trainer(method, toy_root, tmp_path)
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    trainer.set_model_mode("train")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = trainer.model(image)
        loss = trainer.compute_loss(output, label)
    loss.backward()
    assert math.isfinite(loss.item())
    for name, p in trainer.model.prompt_learner.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and p.grad.abs().sum() > 0, name


# ---- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,opts,message", [
    ("IVLP", ["MODEL.BACKBONE.NAME", "test-tiny-rn"], "IVLP prompts CLIP's image transformer, and the backbone "
                                                      "test-tiny-rn: its image tower is ModifiedResNet"),
    ("VPT", ["MODEL.BACKBONE.NAME", "test-tiny-rn"], "VPT prompts CLIP's image transformer"),
    ("PromptSRC", ["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", 9], "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT 9 exceeds the 2 "
                                                             "text blocks of test-tiny: set it to at most 2."),
    ("IVLP", ["TRAINER.IVLP.N_CTX_TEXT", 0], "IVLP learns text prompts (for image prompts only use the VPT trainer)"),
    ("VPT", ["TRAINER.VPT.PROMPT_DEPTH_VISION", 0], "VPT learns image prompts only"),
    ("PromptSRC", ["TRAINER.PROMPTSRC.GPA_STD", 0.0], "the GPA standard deviation must be positive"),
])
def test_bad_backbone_or_settings_fail_before_any_data_is_read(method, opts, message, tmp_path, capsys):
    empty = tmp_path / "no_data"
    empty.mkdir()
    assert train.main(run_args(method, empty, tmp_path / "out", *opts)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("ERROR")]) == 1


# ---- configs: the official values (baselines-2.md sections 2 and 4) -------------------------------------
SCHEDULE = {"sgd": ("sgd", "cosine", 1, "constant", 1e-5, 0.9, 5e-4)}
OFFICIAL = {  # config: (backbone, lr, epochs, batch, {node key: value})
    ("IVLP", "vit_b16"): ("ViT-B/16", 0.0035, 5, 4, dict(N_CTX_TEXT=2, N_CTX_VISION=2, PROMPT_DEPTH_TEXT=12,
                                                         PROMPT_DEPTH_VISION=12)),
    ("IVLP", "vit_b32"): ("ViT-B/32", 0.0035, 5, 4, dict(N_CTX_TEXT=2, N_CTX_VISION=2, PROMPT_DEPTH_TEXT=12,
                                                         PROMPT_DEPTH_VISION=12)),
    ("IVLP", "vit_b16_ep20"): ("ViT-B/16", 0.0025, 20, 4, dict(N_CTX_TEXT=4, N_CTX_VISION=4, PROMPT_DEPTH_TEXT=9,
                                                               PROMPT_DEPTH_VISION=9)),
    ("IVLP", "vit_b16_language"): ("ViT-B/16", 0.0025, 5, 4, dict(N_CTX_TEXT=4, N_CTX_VISION=0, PROMPT_DEPTH_TEXT=12,
                                                                  PROMPT_DEPTH_VISION=0)),
    ("VPT", "vit_b16"): ("ViT-B/16", 0.0025, 5, 4, dict(N_CTX_VISION=8, PROMPT_DEPTH_VISION=12)),
    ("VPT", "vit_b32"): ("ViT-B/32", 0.0025, 5, 4, dict(N_CTX_VISION=8, PROMPT_DEPTH_VISION=12)),
}
SRC = dict(N_CTX_TEXT=4, N_CTX_VISION=4, TEXT_LOSS_WEIGHT=25, IMAGE_LOSS_WEIGHT=10)
for name, backbone, epochs, depth, mean, std in [("vit_b16", "ViT-B/16", 20, 9, 15, 1),
                                                 ("vit_b32", "ViT-B/32", 20, 9, 15, 1),
                                                 ("vit_b16_xd", "ViT-B/16", 20, 3, 6, 10),
                                                 ("vit_b16_fewshot", "ViT-B/16", 50, 9, 30, 30),
                                                 ("vit_b16_fewshot_g45", "ViT-B/16", 50, 9, 45, 5)]:
    OFFICIAL[("PromptSRC", name)] = (backbone, 0.0025, epochs, 4, dict(SRC, PROMPT_DEPTH_TEXT=depth,
                                                                       PROMPT_DEPTH_VISION=depth, GPA_MEAN=mean,
                                                                       GPA_STD=std))


def load_cfg(method, name):
    path = os.path.join(ROOT, "configs", "trainers", method, f"{name}.yaml")
    return train.setup_cfg(train.build_parser().parse_args(["--config-file", path, "--trainer", method]))


@pytest.mark.parametrize("method,name", sorted(OFFICIAL))
def test_configs_hold_the_official_values(method, name):
    backbone, lr, epochs, batch, keys = OFFICIAL[(method, name)]
    cfg = load_cfg(method, name)
    o = cfg.OPTIM
    batch_size = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
    assert (cfg.MODEL.BACKBONE.NAME, o.LR, o.MAX_EPOCH, batch_size) == (backbone, lr, epochs, batch)
    assert SCHEDULE["sgd"] == (o.NAME, o.LR_SCHEDULER, o.WARMUP_EPOCH, o.WARMUP_TYPE, o.WARMUP_CONS_LR, o.MOMENTUM,
            o.WEIGHT_DECAY)
    assert cfg.DATALOADER.TEST.BATCH_SIZE == 100 and tuple(cfg.INPUT.TRANSFORMS) == (
        "random_resized_crop", "random_flip", "normalize")
    node = cfg.TRAINER[NODES[method]]
    assert (node.CTX_INIT, node.PREC) == ("a photo of a", "fp16")
    assert {k: node[k] for k in keys} == keys


def test_every_shipped_config_is_checked_and_demos_use_digits_tiny():
    import glob

    for method in METHODS:
        paths = glob.glob(os.path.join(ROOT, "configs", "trainers", method, "*.yaml"))
        names = {os.path.basename(p)[:-5] for p in paths}
        assert names == {n for m, n in OFFICIAL if m == method} | {"demo"}, method
        assert load_cfg(method, "demo").MODEL.BACKBONE.NAME == "digits-tiny"


def test_reported_rows_equal_the_facts_sheet():
    """baselines-2.md: PromptSRC's README average (section 2), MaPLe README's VPT deep and IVLP rows (section 4)."""
    import re


    path = os.path.join(SHARED, "docs", "baselines-2.md")
    if not os.path.isfile(path):
        pytest.skip("../shared/docs/baselines-2.md is not present")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    triple = r"(\d+\.\d+) / (\d+\.\d+) / (\d+\.\d+)"
    facts = {"PromptSRC": re.search(r"base-to-new average \*\*" + triple, text).groups(),
             "VPT": re.search(r"VPT deep " + triple, text).groups(),
             "IVLP": re.search(r"IVLP \(2\+2, J = 12\) " + triple, text).groups()}
    from results import reported
    for method, values in facts.items():
        assert reported.REPORTED_BASE2NEW[method] == {reported.AVERAGE: tuple(float(v) for v in values)}
        assert method in reported.BASE2NEW_SOURCES and method in reported.UNAVAILABLE
