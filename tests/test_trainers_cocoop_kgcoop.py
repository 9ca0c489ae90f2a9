"""CoCoOp and KgCoOp on ToyColors with test-tiny: each trains, saves only what it learned, re-evaluates
exactly from its checkpoint and scores other class names; the mechanisms against hand computations:
CoCoOp's image-conditioned context (v_m + pi_b, the meta-net d_v -> d_v/16 -> width) and KgCoOp's
regulariser (lambda * (1 - mean_c cos(w_c, w_c^clip)) added to the cross-entropy)."""
import json
import os
import re

import pytest
import torch
import torch.nn.functional as F

import tests.toy_plugin  # noqa: F401  (registers ToyColors)
import train
from engine import build_trainer, set_random_seed
from tests.conftest import docs_text
from trainers.cocoop import conditioned_context
from trainers.kgcoop import anchor_template, knowledge_guided_term

ROOT = os.path.dirname(train.__file__)
NODE_OPTS = {"CoCoOp": [], "KgCoOp": ["TRAINER.KGCOOP.W", "8.0"]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # test-tiny: one intra-op thread is faster


def run_args(method, root, out, *opts, extra=()):
    return ["--root", root, "--output-dir", str(out), "--trainer", method, "--seed", "1",
            "--config-file", os.path.join(ROOT, "configs", "trainers", method, "vit_b16.yaml"), *extra,
            "DATASET.NAME", "ToyColors", "MODEL.BACKBONE.NAME", "test-tiny", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TEST.BATCH_SIZE", "16", "DATASET.NUM_SHOTS", "16", *NODE_OPTS[method], *[str(o) for o in opts]]


def make_trainer(method, root, out, *opts):
    set_random_seed(1)
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(run_args(method, root, out, *opts))))


@torch.no_grad()
def eval_test_logits(trainer):
    trainer.set_model_mode("eval")
    return torch.cat([trainer.model_inference(trainer.parse_batch_test(b)[0]) for b in trainer.test_loader])


# ---- CoCoOp's mechanism ----------------------------------------------------------------------------
def test_conditioned_context_adds_each_images_shift_to_every_token():
    ctx = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # M = 3 tokens, D = 2
    shift = torch.tensor([[10.0, 20.0], [-1.0, 0.5]])  # B = 2 images
    out = conditioned_context(ctx, shift)
    assert out.shape == (2, 3, 2)
    expected = torch.tensor([[[11.0, 22.0], [13.0, 24.0], [15.0, 26.0]],
                             [[0.0, 2.5], [2.0, 4.5], [4.0, 6.5]]])
    torch.testing.assert_close(out, expected)


def test_cocoop_logits_are_the_text_features_of_each_images_context(toy_root, tmp_path):
    trainer = make_trainer("CoCoOp", toy_root, tmp_path)
    model, learner = trainer.model, trainer.model.prompt_learner
    meta = learner.meta_net
    vis_dim, width = model.encoder.model.visual.output_dim, model.tower.width
    assert (meta.linear1.in_features, meta.linear1.out_features) == (vis_dim, vis_dim // 16)
    assert (meta.linear2.in_features, meta.linear2.out_features) == (vis_dim // 16, width)
    assert learner.n_ctx == 4 and tuple(learner.ctx.shape) == (4, width)
    expected_params = 4 * width + vis_dim * (vis_dim // 16) + vis_dim // 16 + (vis_dim // 16) * width + width
    assert trainer.trainable_params == expected_params
    assert {id(p) for g in trainer.optim.param_groups for p in g["params"]} == {id(p) for p in learner.parameters()}

    images = trainer.parse_batch_test(next(iter(trainer.test_loader)))[0][:2]
    with torch.no_grad():
        logits = model(images)
        f = F.normalize(model.encoder.model.encode_image(images).float(), dim=-1)
        pi = meta.linear2(torch.relu(meta.linear1(f)))  # by hand: Linear, ReLU, Linear
        rows = []
        for b in range(2):
            prompts = learner.token_embedding.clone()
            prompts[:, 1:5] = learner.ctx + pi[b]  # [SOS][v_m + pi_b][name][.][EOS]
            g = F.normalize(model.tower(prompts, learner.tokenized_prompts).float(), dim=-1)
            rows.append(model.encoder.logit_scale * f[b] @ g.t())
        torch.testing.assert_close(logits, torch.stack(rows), rtol=1e-4, atol=1e-4)
        # the two images differ only through pi: with image 1's shift, image 0's features give CoOp-style
        # logits against image 1's text features
        g1 = F.normalize(model.tower(model.prompts(learner.ctx + pi[1]), learner.tokenized_prompts), dim=-1)
        torch.testing.assert_close(model.prompts(learner.ctx + pi[1])[:, 1:5],
                                   (learner.ctx + pi[1]).expand(learner.n_cls, -1, -1))
        torch.testing.assert_close(logits[1], model.encoder.logit_scale * f[1] @ g1.t(), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(pi[0], pi[1])
        # a zero meta-net output makes CoCoOp exactly CoOp's prompt with the same context
        for p in meta.linear2.parameters():
            p.zero_()
        g = F.normalize(model.tower(learner(), learner.tokenized_prompts).float(), dim=-1)
        torch.testing.assert_close(model(images), model.encoder.logit_scale * f @ g.t(), rtol=1e-4, atol=1e-4)


# ---- KgCoOp's mechanism ----------------------------------------------------------------------------
def test_knowledge_guided_term_by_hand():
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    anchor = torch.tensor([[1.0, 1.0], [0.0, -1.0], [3.0, 4.0]])
    # cosines: 1/sqrt(2), -1, 1 -> 1 - mean
    expected = 1.0 - (2 ** -0.5 - 1.0 + 1.0) / 3
    assert knowledge_guided_term(w, anchor).item() == pytest.approx(expected, rel=1e-6)
    assert knowledge_guided_term(anchor, anchor).item() == pytest.approx(0.0, abs=1e-6)


def test_kgcoop_anchor_templates():
    assert anchor_template("DescribableTextures") == "a photo of a {}, a type of texture."  # KgCoOp's, not CoOp's
    assert anchor_template("OxfordPets") == "a photo of a {}, a type of pet."
    assert anchor_template("EuroSAT") == "a centered satellite photo of {}."


def test_kgcoop_loss_is_cross_entropy_plus_lambda_times_the_term(toy_root, tmp_path):
    trainer = make_trainer("KgCoOp", toy_root, tmp_path, "TRAINER.KGCOOP.W", "3.5", "TRAINER.COOP.PREC", "fp32")
    model, learner = trainer.model, trainer.model.prompt_learner
    names = [n.replace("_", " ") for n in trainer.dm.dataset.classnames]
    clip, tok = model.encoder.model, model.encoder.tokenizer
    with torch.no_grad():
        anchor = F.normalize(clip.encode_text(tok([f"a photo of a {n}." for n in names])).float(), dim=-1)
        with_ctx = F.normalize(model.tower(learner(), learner.tokenized_prompts).float(), dim=-1)
    torch.testing.assert_close(model.anchor_features, anchor, rtol=1e-5, atol=1e-5)  # ToyColors: default template
    # the context starts as "a photo of a": the learned prompt is the anchor itself, so the term is 0
    assert knowledge_guided_term(with_ctx, anchor).item() == pytest.approx(0.0, abs=1e-5)

    with torch.no_grad():
        learner.ctx.add_(0.5 * torch.randn_like(learner.ctx))
        w = F.normalize(model.tower(learner(), learner.tokenized_prompts).float(), dim=-1)
    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)
    with torch.no_grad():
        f = F.normalize(clip.encode_image(image).float(), dim=-1)
        ce = F.cross_entropy(model.encoder.logit_scale * f @ w.t(), label).item()
    cos = (w * anchor).sum(-1)
    kg = 1.0 - cos.mean().item()
    assert kg > 0.01
    trainer.batch_idx, trainer.num_batches = 0, 2
    summary = trainer.forward_backward(batch)
    assert summary["loss"] == pytest.approx(ce + 3.5 * kg, rel=1e-4)


# ---- training, checkpoints, eval-only, new classes -----------------------------------------------------
def _epoch_losses(text, epochs):
    return [float(re.search(rf"epoch \[{e}/{epochs}\] batch \[1/1\] .* loss ([\d.e+-]+) ", text).group(1))
            for e in range(1, epochs + 1)]


@pytest.mark.slow
@pytest.mark.parametrize("method,opts,expected_keys", [
    # test-tiny's text tower is very sensitive to its context: lambda 8 at lr 0.002 oscillates there
    ("KgCoOp", ["TRAINER.KGCOOP.W", "1.0", "OPTIM.LR", "0.002"], ["ctx"]),
    ("CoCoOp", ["OPTIM.LR", "0.05"], ["ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
                                       "meta_net.linear2.weight", "meta_net.linear2.bias"]),
])
def test_trains_saves_what_it_learned_and_reevaluates_on_base_and_new(toy_root, tmp_path, capsys, method, opts,
                                                                      expected_keys):
    epochs = 8
    out = tmp_path / "run"
    # one deterministic full batch of the base classes per epoch (no random crop): the train-set loss;
    # epoch 1 is the constant warm-up at 1e-5
    common = ["INPUT.TRANSFORMS", "('normalize',)", "DATALOADER.TRAIN_X.BATCH_SIZE", "24", *opts,
              "OPTIM.MAX_EPOCH", epochs, "DATASET.NAME", "ToyColors", "DATASET.SUBSAMPLE_CLASSES", "base"]
    trainer = make_trainer(method, toy_root, out, *common)
    trainer.train()
    printed = capsys.readouterr().out
    losses = _epoch_losses(printed, epochs)
    assert losses[-1] < 0.9 * losses[0] and losses[-1] < min(losses[:4]), losses  # measured: 0.70x, 0.83x
    accuracy = trainer.test()

    saved = torch.load(out / "prompt_learner" / f"model.pth.tar-{epochs}", weights_only=True)["state_dict"]
    assert list(saved) == expected_keys  # no CLIP weight, no fixed token vector
    assert sum(v.numel() for v in saved.values()) == trainer.extra_results()["trainable_params"]

    load = ["--eval-only", "--model-dir", str(out), "--load-epoch", str(epochs)]
    ev = tmp_path / "eval_base"
    assert train.main(run_args(method, toy_root, ev, *common, extra=load)) == 0
    res = json.loads((ev / "results.json").read_text())
    assert res["method"] == method and res["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert res["trainable_params"] == sum(v.numel() for v in saved.values())

    # new classes: the same checkpoint scores the other half of the class names
    new_opts = [*common[:-1], "new"]
    fresh = make_trainer(method, toy_root, tmp_path / "new", *new_opts)
    base_names, new_names = trainer.dm.dataset.classnames, fresh.dm.dataset.classnames
    assert new_names and not set(base_names) & set(new_names)
    fresh.load_model(str(out), epoch=epochs)
    tok = fresh.model.encoder.tokenizer
    assert torch.equal(fresh.model.prompt_learner.tokenized_prompts,
                       tok([f"a photo of a {n}." for n in new_names]))
    torch.testing.assert_close(fresh.model.prompt_learner.ctx, trainer.model.prompt_learner.ctx)
    logits = eval_test_logits(fresh)
    assert logits.shape[1] == len(new_names)
    ev_new = tmp_path / "eval_new"
    assert train.main(run_args(method, toy_root, ev_new, *new_opts, extra=load)) == 0
    res_new = json.loads((ev_new / "results.json").read_text())
    labels = torch.cat([b["label"] for b in fresh.test_loader])
    assert res_new["accuracy"] == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item(),
                                                abs=1e-6)


@pytest.mark.parametrize("method,opts,message", [
    ("CoCoOp", ["TRAINER.COOP.CSC", "True"], "CoCoOp learns one context shared by all classes"),
    ("CoCoOp", ["TRAINER.COOP.CLASS_TOKEN_POSITION", "front"], 'set TRAINER.COOP.CLASS_TOKEN_POSITION "end"'),
    ("KgCoOp", ["TRAINER.KGCOOP.W", "-1.0"], "TRAINER.KGCOOP.W must be at least 0"),
])
def test_bad_settings_fail_with_one_clear_message(toy_root, tmp_path, capsys, method, opts, message):
    assert train.main(run_args(method, toy_root, tmp_path, *opts)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("method", ["CoCoOp", "KgCoOp"])
def test_configs_state_the_papers_protocol(method):
    backbone = {"vit_b16": "ViT-B/16", "vit_b32": "ViT-B/32", "rn50": "RN50", "rn101": "RN101"}
    batch, epochs = {"CoCoOp": (1, 10), "KgCoOp": (128, 100)}[method]
    for name, bb in backbone.items():
        path = os.path.join(ROOT, "configs", "trainers", method, f"{name}.yaml")
        cfg = train.setup_cfg(train.build_parser().parse_args(["--config-file", path, "--trainer", method]))
        assert bb == cfg.MODEL.BACKBONE.NAME
        assert (
            "sgd", 0.002, "cosine", epochs) == (cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.LR_SCHEDULER,
                                                cfg.OPTIM.MAX_EPOCH)
        assert (cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_CONS_LR) == (1, "constant", 1e-5)
        assert (cfg.OPTIM.MOMENTUM, cfg.OPTIM.WEIGHT_DECAY) == (0.9, 5e-4)
        assert batch == cfg.DATALOADER.TRAIN_X.BATCH_SIZE
        node = cfg.TRAINER.COOP
        assert (node.CTX_INIT, node.PREC, node.CSC, node.CLASS_TOKEN_POSITION) == ("a photo of a", "fp16", False,
                                                                                 "end")
        if method == "KgCoOp":
            assert cfg.TRAINER.KGCOOP.W == 8.0
    demo = os.path.join(ROOT, "configs", "trainers", method, "demo.yaml")
    cfg = train.setup_cfg(train.build_parser().parse_args(["--config-file", demo, "--trainer", method]))
    assert cfg.MODEL.BACKBONE.NAME == "digits-tiny" and list(cfg.INPUT.TRANSFORMS) == ["normalize"]


def test_readme_and_reported_numbers_agree_with_the_parameter_counts():
    """ViT-B/16 (image embedding 512, text width 512, 4 context tokens): the counts the docs state."""
    from results import reported
    from trainers.cocoop import build_meta_net

    cocoop = 4 * 512 + sum(p.numel() for p in build_meta_net(512, 512).parameters())
    assert cocoop == 35_360  # baselines.md: CoCoOp's trainable parameters at ViT-B/16
    docs = docs_text()
    assert f"{cocoop:,} parameters at ViT-B/16" in docs and f"{4 * 512:,} parameters at ViT-B/16" in docs
    for method in ("CoCoOp", "KgCoOp"):
        base, new, hm = reported.REPORTED_BASE2NEW[method]["avg"]
        assert f"{method} {base:.2f}/{new:.2f}/{hm:.2f}" in docs
        assert hm == pytest.approx(2 * base * new / (base + new), abs=0.01)


def test_kgcoop_loads_a_released_style_checkpoint_with_its_unused_tensors(toy_root, tmp_path):
    """KgCoOp's own checkpoints also hold frozen, unused bias_vectors, meta_net.* and fixed token vectors."""
    trainer = make_trainer("KgCoOp", toy_root, tmp_path)
    learner = trainer.model.prompt_learner
    ctx = torch.randn_like(learner.ctx)
    state = {"ctx": ctx, "bias_vectors": torch.zeros(1, 512), "meta_net.linear1.weight": torch.zeros(512, 512),
             "meta_net.linear1.bias": torch.zeros(512), "token_prefix": torch.zeros(4, 1, 64)}
    learner.load_state_dict(state)
    assert torch.equal(learner.ctx.detach(), ctx)
    with pytest.raises(RuntimeError, match="other"):  # anything else unexpected still fails
        learner.load_state_dict(dict(state, other=torch.zeros(1)))
