"""CLIP-LoRA and TaskRes on ToyColors with test-tiny: the iteration budget and schedule, what a checkpoint
holds, --eval-only, base-to-new (CLIP-LoRA scores new names through its adapters; TaskRes refuses), resume
after kill -9, the heads against hand computations, TaskRes's enhanced base (a small fake released file),
clear errors, and the configs against the facts sheet (../shared/docs/baselines-2.md)."""
import json
import os
import re
import sys

import pytest
import torch
import torch.nn.functional as F

import tests.toy_plugin  # noqa: F401  (registers ToyColors)
import train
from engine import build_trainer, set_random_seed
from tests.conftest import REPO, SHARED, kill_and_resume
from trainers.run_record import CheckpointError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NODE_OPTS = {"CLIPLoRA": ["TRAINER.CLIPLORA.N_ITERS", "3", "OPTIM.LR", "0.01"],
             "TaskRes": ["OPTIM.MAX_EPOCH", "3", "OPTIM.LR", "0.01", "OPTIM.WARMUP_EPOCH", "0"]}


def run_args(method, root, out, *opts, extra=()):
    return ["--root", root, "--output-dir", str(out), "--trainer", method, "--seed", "1",
            "--config-file", os.path.join(REPO, "configs", "trainers", method, "vit_b16.yaml"), *extra,
            "DATASET.NAME", "ToyColors", "MODEL.BACKBONE.NAME", "test-tiny", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TEST.BATCH_SIZE", "16", "DATASET.NUM_SHOTS", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "3",
            *NODE_OPTS[method], *[str(o) for o in opts]]


def make_trainer(method, root, out, *opts):
    set_random_seed(1)
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(run_args(method, root, out, *opts))))


@torch.no_grad()
def eval_logits(trainer):
    trainer.set_model_mode("eval")
    batches = list(trainer.test_loader)
    logits = torch.cat([trainer.model_inference(b["img"].to(trainer.device)) for b in batches])
    return logits, torch.cat([b["label"] for b in batches])


# ---- CLIP-LoRA -------------------------------------------------------------------------------------------
def test_clip_lora_runs_its_iteration_budget_and_saves_only_the_adapters(toy_root, tmp_path):
    out = tmp_path / "run"
    trainer = make_trainer("CLIPLoRA", toy_root, out)
    n = len(trainer.dm.dataset.train_x)
    assert trainer.total_iters == 3 * 2 and trainer.iters_per_epoch == -(-n // 3)  # N_ITERS x shots; no drop_last
    trainer.train()
    assert trainer.sched.last_epoch == 6 and trainer.get_current_lr() == pytest.approx(1e-6)  # cosine to eta_min
    state = trainer.optim.state_dict()["state"]
    assert all(int(s["step"]) == 6 for s in state.values())  # every A, B stepped once per iteration
    saved = torch.load(out / "lora" / f"model.pth.tar-{trainer.max_epoch}", weights_only=True)["state_dict"]
    assert {k.rsplit(".", 1)[-1] for k in saved} == {"lora_A", "lora_B"}
    assert sum(v.numel() for v in saved.values()) == trainer.trainable_params == 2 * 2 * 2 * 3 * 2 * 64
    accuracy = trainer.test()
    ev = tmp_path / "ev"
    assert train.main(run_args("CLIPLoRA", toy_root, ev, extra=[
        "--eval-only", "--model-dir", str(out), "--load-epoch", str(trainer.max_epoch)])) == 0
    res = json.loads((ev / "results.json").read_text())
    assert res["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    rec = res["clip_lora"]
    assert (rec["r"], rec["alpha"], rec["params"], rec["total_iters"], rec["weight_decay"]) == (
        2, 1.0, ["q", "k", "v"], 6, 0.01)
    assert any("37a196d" in note for note in rec["notes"])


def test_clip_lora_scores_new_classes_through_its_adapters(toy_root, tmp_path):
    out = tmp_path / "run"
    base = make_trainer("CLIPLoRA", toy_root, out, "DATASET.SUBSAMPLE_CLASSES", "base", "TEST.NO_TEST", True)
    base.train()
    new = make_trainer("CLIPLoRA", toy_root, tmp_path / "new", "DATASET.SUBSAMPLE_CLASSES", "new")
    new.load_model(str(out), epoch=base.max_epoch)
    assert new.class_policy["trained"] == ["red", "green"] and new.class_policy["evaluated"] == ["blue", "yellow"]
    logits, _ = eval_logits(new)
    model = new.encoder.model  # by hand: the adapted encoders on the new names' prompts
    images = torch.cat([b["img"] for b in new.test_loader])
    with torch.no_grad():
        prompts = new.encoder.tokenizer(["a photo of a blue.", "a photo of a yellow."])
        w = F.normalize(model.encode_text(prompts), dim=-1)
        f = F.normalize(model.encode_image(images), dim=-1)
    torch.testing.assert_close(logits, 100.0 * f @ w.t(), rtol=1e-5, atol=1e-4)
    for key, value in base.model.adapters.state_dict().items():
        assert torch.equal(new.model.adapters.state_dict()[key], value)


@pytest.mark.parametrize("opts,message", [
    (["OPTIM.WEIGHT_DECAY", "100.0"], "first-release bug (1e2, issue #1"),
    (["OPTIM.NAME", "sgd"], "CLIP-LoRA trains with AdamW"),
    (["TRAINER.CLIPLORA.PARAMS", "['q', 'x']"], "choose among q, k, v, o"),
    (["TRAINER.CLIPLORA.POSITION", "bottom"], '"bottom" is defined for 12-block towers'),
])
def test_clip_lora_bad_settings_fail_with_one_error_before_the_data(toy_root, tmp_path, capsys, opts, message):
    assert train.main(run_args("CLIPLoRA", toy_root, tmp_path / "o", *opts)) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("ERROR:") == 1 and "Traceback" not in captured.err
    assert "# train_x" not in captured.out


def test_a_frozen_text_tower_is_encoded_once_and_trains_the_same(toy_root, tmp_path, monkeypatch):
    """ENCODER vision: no adapter in the text tower, so its class features are encoded once (as the reference
    does before training), not at every step; the adapters train to the same values either way."""
    from trainers.clip_lora import LoRACLIP

    def trained(out):
        trainer = make_trainer("CLIPLoRA", toy_root, out, "TRAINER.CLIPLORA.ENCODER", "vision")
        calls = []
        encode = trainer.encoder.model.encode_text
        monkeypatch.setattr(trainer.encoder.model, "encode_text", lambda t: calls.append(1) or encode(t))
        trainer.train()
        return trainer.model.adapters.state_dict(), len(calls)

    once, n_once = trained(tmp_path / "once")
    monkeypatch.setattr(LoRACLIP, "text_adapted", property(lambda self: True, lambda self, v: None), raising=False)
    every, n_every = trained(tmp_path / "every")  # the text tower encoded at every step, as before
    assert n_once == 1 and n_every > 6
    assert once.keys() == every.keys() and all(torch.equal(once[k], every[k]) for k in once)


def test_a_resumed_run_continues_with_the_loss_scale_it_had(toy_root, tmp_path):
    """fp16 loss scaling (CUDA's GradScaler; its CPU twin here) changes its scale while it trains: a resumed run
    must take the scale it had, not a fresh one, or its fp16 steps differ from the uninterrupted run's."""
    out = tmp_path / "run"
    trainer = make_trainer("CLIPLoRA", toy_root, out)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    trainer.scaler.scale(torch.ones(()))  # the scale exists from its first use
    trainer.scaler.update(new_scale=37.0)
    trainer.save_model(0, str(out))
    again = make_trainer("CLIPLoRA", toy_root, out)
    again.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    assert again.resume_model_if_exist(str(out)) == 1
    assert again.scaler.get_scale() == 37.0


# ---- TaskRes ---------------------------------------------------------------------------------------------
def test_taskres_head_is_the_code_formula_and_only_the_residual_is_saved(toy_root, tmp_path):
    out = tmp_path / "run"
    trainer = make_trainer("TaskRes", toy_root, out)
    head, model = trainer.model.head, trainer.encoder.model
    tok = trainer.encoder.tokenizer
    with torch.no_grad():  # T: the UNnormalised features of CoOp's template (one for ToyColors), per class
        expected = torch.stack([model.encode_text(tok([f"a photo of a {c}."]))[0]
                                for c in trainer.dm.dataset.classnames])
    torch.testing.assert_close(head.base_text_features, expected)
    assert torch.count_nonzero(head.text_feature_residuals) == 0 and head.alpha == 0.5
    trainer.train()
    x = head.text_feature_residuals.detach()
    assert torch.count_nonzero(x) > 0
    images = torch.cat([b["img"] for b in trainer.test_loader])
    with torch.no_grad():
        f = F.normalize(model.encode_image(images), dim=-1)
        w = F.normalize(expected + 0.5 * x, dim=-1)  # the base is not normalised before the residual is added
        torch.testing.assert_close(eval_logits(trainer)[0], model.logit_scale.exp() * f @ w.t())
    saved = torch.load(out / "taskres" / "model.pth.tar-3", weights_only=True)["state_dict"]
    assert list(saved) == ["text_feature_residuals"] and trainer.trainable_params == x.numel() == 4 * 64
    # a TaskRes checkpoint also holds its base: it is rebuilt here, never adopted
    head.load_state_dict({"base_text_features": torch.zeros_like(expected), "text_feature_residuals": x})
    torch.testing.assert_close(head.base_text_features, expected)
    ev = make_trainer("TaskRes", toy_root, tmp_path / "ev", "DATASET.SUBSAMPLE_CLASSES", "new")
    with pytest.raises(CheckpointError, match="one learned row per training class"):
        ev.load_model(str(out), epoch=3)


def test_taskres_script_defaults_per_dataset():
    from types import SimpleNamespace

    from trainers.features import TIP_IMAGENET_TEMPLATES
    from trainers.taskres import TaskRes, base_templates

    def settings(dataset, on=True):
        node = SimpleNamespace(RESIDUAL_SCALE=0.5, SCRIPT_DEFAULTS=on)
        cfg = SimpleNamespace(DATASET=SimpleNamespace(NAME=dataset), OPTIM=SimpleNamespace(LR=2e-3),
                              TRAINER={"TASKRES": node})
        return TaskRes.settings(SimpleNamespace(node=node, cfg=cfg, head_dataset=dataset))[:2]

    assert settings("OxfordFlowers") == (1.0, 2e-3) and settings("ImageNet") == (0.5, 2e-4)
    assert settings("DescribableTextures") == (0.5, 2e-3) and settings("OxfordFlowers", on=False) == (0.5, 2e-3)
    assert base_templates("ImageNet") == [*TIP_IMAGENET_TEMPLATES, "a photo of a {}."]


def test_taskres_enhanced_base_loads_the_released_projection(toy_root, tmp_path, capsys):
    trainer = make_trainer("TaskRes", toy_root, tmp_path / "regular")
    model, tok = trainer.encoder.model, trainer.encoder.tokenizer
    width, embed = model.text_projection.shape
    torch.manual_seed(3)
    weight = torch.randn(embed, width)  # nn.Linear(width -> embed).weight, as the released files hold it
    folder = tmp_path / "strong_base" / "ToyColors" / "rn50_2shots"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {"weight": weight}, "epoch": 50}, folder / "model.pth.tar")
    pattern = str(tmp_path / "strong_base" / "{dataset}" / "rn50_{shots}shots" / "model.pth.tar")
    enhanced = make_trainer("TaskRes", toy_root, tmp_path / "enhanced", "TRAINER.TASKRES.ENHANCED_BASE", pattern)
    proj = model.text_projection.detach().clone()
    with torch.no_grad():
        model.text_projection.copy_(weight.t())
        expected = torch.stack([model.encode_text(tok([f"a photo of a {c}."]))[0] for c in
                                enhanced.dm.dataset.classnames])
        model.text_projection.copy_(proj)
    torch.testing.assert_close(enhanced.model.head.base_text_features, expected)
    assert torch.equal(model.text_projection, proj)  # CLIP's own projection is restored
    assert not torch.allclose(trainer.model.head.base_text_features, expected)
    assert enhanced.method_record()["enhanced_base"].endswith("ToyColors/rn50_2shots/model.pth.tar")
    # another projection saved under the same name (issue 19): other numbers, so the run is not done
    from engine.results import build_results
    from runs.data_check import data_problems
    done = json.loads(json.dumps(build_results(enhanced.cfg, enhanced, 0.0)))
    assert data_problems(done, toy_root) == []
    torch.save({"state_dict": {"weight": weight * 2}, "epoch": 50}, folder / "model.pth.tar")
    assert data_problems(done, toy_root) == [
        f"enhanced_base file {folder / 'model.pth.tar'} changed since this run (sha256 differs)"]
    # missing file: one ERROR line naming it, before CLIP or the data
    missing = str(tmp_path / "nowhere" / "{dataset}.pth.tar")
    capsys.readouterr()
    assert train.main(run_args("TaskRes", toy_root, tmp_path / "o", "TRAINER.TASKRES.ENHANCED_BASE", missing)) == 1
    captured = capsys.readouterr()
    assert f"ERROR: TRAINER.TASKRES.ENHANCED_BASE names {tmp_path}/nowhere/ToyColors.pth.tar, which does not exist" \
        in captured.err and "Traceback" not in captured.err and "Loading CLIP" not in captured.out
    torch.save({"state_dict": {"weight": torch.zeros(3, 5)}}, folder / "model.pth.tar")
    assert train.main(run_args("TaskRes", toy_root, tmp_path / "o2", "TRAINER.TASKRES.ENHANCED_BASE", pattern)) == 1
    assert f"projects 5 -> 3, this backbone's text tower {width} -> {embed}" in capsys.readouterr().err


# ---- both: resume after kill -9 ----------------------------------------------------------------------------
@pytest.mark.slow  # six train.py subprocesses (about 40 s)
@pytest.mark.parametrize("method,key", [("CLIPLoRA", "lora"), ("TaskRes", "taskres")])
def test_kill9_then_resume_equals_an_uninterrupted_run(method, key, toy_root, tmp_path):
    opts = {"CLIPLoRA": ["TRAINER.CLIPLORA.N_ITERS", "4"], "TaskRes": ["OPTIM.MAX_EPOCH", "3"]}[method]

    def argv(out):
        return [sys.executable, "train.py", *run_args(method, toy_root, out, *opts)]

    whole, killed, resumed = kill_and_resume(argv, tmp_path)
    assert "Previous epoch: 2" in resumed.stdout
    last = sorted(os.listdir(whole / key))[-1]
    a, b = (torch.load(d / key / last, weights_only=True) for d in (whole, killed))
    assert set(a["state_dict"]) == set(b["state_dict"])
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    results = [json.loads((d / "results.json").read_text())["accuracy"] for d in (whole, killed)]
    assert results[0] == results[1]


# ---- configs against the facts sheet ----------------------------------------------------------------------
def facts(section_number):
    path = os.path.join(SHARED, "docs", "baselines-2.md")
    if not os.path.isfile(path):
        pytest.skip("../shared/docs/baselines-2.md is not present")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"\n## {section_number}. ")
    return " ".join(text[start:text.index("\n## ", start + 5)].split())


def load_cfg(method, name):
    path = os.path.join(REPO, "configs", "trainers", method, f"{name}.yaml")
    return train.setup_cfg(train.build_parser().parse_args(["--config-file", path, "--trainer", method]))


def test_clip_lora_configs_are_the_official_values():
    sheet = facts(1)
    r, alpha, dropout = re.search(r"r = (\d+), alpha = (\d+) .*?dropout ([\d.]+) on the \*\*input", sheet).groups()
    lr, b1, b2, wd = re.search(r"AdamW\(lr ([\de.-]+), betas \(([\d.]+), ([\d.]+)\), weight decay ([\de.-]+)\)",
                               sheet).groups()
    n_iters = re.search(r"total_iters = (\d+)·K", sheet).group(1)
    eta_min = re.search(r"eta_min ([\de.-]+)", sheet).group(1)
    batch = re.search(r"\| batch \| (\d+);", sheet).group(1)
    from trainers.clip_lora import ETA_MIN

    assert float(eta_min) == ETA_MIN
    for name, backbone in (("vit_b16", "ViT-B/16"), ("vit_b32", "ViT-B/32"), ("demo", "digits-tiny")):
        cfg = load_cfg("CLIPLoRA", name)
        node = cfg.TRAINER.CLIPLORA
        assert backbone == cfg.MODEL.BACKBONE.NAME
        assert (int(r), float(alpha), float(dropout)) == (node.R, node.ALPHA, node.DROPOUT)
        assert (node.ENCODER, list(node.PARAMS), node.POSITION, node.LOGIT_SCALE) == ("both", ["q", "k", "v"],
                                                                                     "all", 100.0)
        assert (
            "adamw", float(b1), float(b2), float(wd)) == (cfg.OPTIM.NAME, cfg.OPTIM.ADAM_BETA1, cfg.OPTIM.ADAM_BETA2,
                                                          cfg.OPTIM.WEIGHT_DECAY)
        assert int(batch) == cfg.DATALOADER.TRAIN_X.BATCH_SIZE and node.PREC == "fp16"
        if name != "demo":  # the demo's budget and lr: benchmarks/README.md
            assert (float(lr), int(n_iters), "a photo of a {}.") == (cfg.OPTIM.LR, node.N_ITERS, node.TEMPLATE)


def test_taskres_configs_are_the_official_values():
    sheet = facts(3)
    assert "`RESIDUAL_SCALE` = 0.5 for all datasets, **1.0 for Flowers**" in sheet
    assert "lr 2e-3 (2e-4 on ImageNet)" in sheet and "batch 256" in sheet and "Test batch 500" in sheet
    assert "**100 epochs for 1/2/4 shots, 200 for 8/16**" in sheet and "(`adam_lr2e-4_B256_ep200_*`" in sheet
    from trainers.taskres import SCRIPT_EPOCHS, SCRIPT_LR, SCRIPT_SCALE

    assert SCRIPT_SCALE == {"OxfordFlowers": 1.0} and SCRIPT_LR == {"ImageNet": 2e-4}
    assert SCRIPT_EPOCHS == {1: 100, 2: 100, 4: 100, 8: 200, 16: 200}
    expected = {"rn50": ("RN50", 2e-3, 200), "rn50_ep100": ("RN50", 2e-3, 100), "rn101": ("RN101", 2e-4, 200),
                "vit_b16": ("ViT-B/16", 2e-4, 200), "vit_b32": ("ViT-B/32", 2e-4, 200)}
    for name, (backbone, lr, epochs) in expected.items():
        cfg = load_cfg("TaskRes", name)
        assert (
            backbone, "adam", lr, epochs) == (cfg.MODEL.BACKBONE.NAME, cfg.OPTIM.NAME, cfg.OPTIM.LR,
                                              cfg.OPTIM.MAX_EPOCH)
        assert (cfg.OPTIM.WEIGHT_DECAY, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE,
                cfg.OPTIM.WARMUP_CONS_LR) == (5e-4, "cosine", 1, "constant", 1e-5)
        assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.DATALOADER.TEST.BATCH_SIZE) == (256, 500)
        node = cfg.TRAINER.TASKRES
        assert (node.RESIDUAL_SCALE, node.ENHANCED_BASE, node.SCRIPT_DEFAULTS) == (0.5, "", True)
    assert load_cfg("TaskRes", "demo").MODEL.BACKBONE.NAME == "digits-tiny"


def test_reported_clip_lora_numbers_are_the_facts_sheets():

    from results import reported
    sheet = facts(1)
    flowers = re.search(r"Flowers zero-shot (\d+\.\d), 16-shot (\d+\.\d)", sheet).groups()
    assert reported.REPORTED["CLIPLoRA"] == {"OxfordFlowers": float(flowers[1])}
    assert float(flowers[0]) == reported.REPORTED["ZeroshotCLIP"]["OxfordFlowers"]
    averages = re.search(r"= \*\*([\d.]+) / ([\d.]+) / ([\d.]+) / ([\d.]+) / ([\d.]+)\*\*", sheet).groups()
    assert dict(zip((1, 2, 4, 8, 16), map(float, averages), strict=False)) == reported.CLIP_LORA_AVERAGES
    assert "copied" in reported.SOURCES[(reported.BACKBONE, reported.SHOTS)]["CLIPLoRA"]
    assert "TaskRes" in reported.UNAVAILABLE
