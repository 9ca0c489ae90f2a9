"""Evaluator lines, optimisers and schedulers with warm-up."""
import pytest
import torch

import engine
from engine import build_evaluator, build_lr_scheduler, build_optimizer, get_cfg_default, schedulers


def test_classification_evaluator_lines(capsys):
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    ev = build_evaluator(cfg, lab2cname={0: "cat", 1: "dog"})
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 0.0]])
    ev.process(logits, torch.tensor([0, 1, 1, 1]))
    res = ev.evaluate()
    out = capsys.readouterr().out
    assert res["accuracy"] == 50.0 and res["error_rate"] == 50.0
    assert res["macro_f1"] == pytest.approx(50.0)  # F1 0.5 for both classes
    assert res["perclass_accuracy"] == pytest.approx((100 + 100 / 3) / 2)
    for line in ["=> result", "* total: 4", "* correct: 2", "* accuracy: 50.0%", "* error: 50.0%",
                 "* macro_f1: 50.0%", "=> per-class result", "* average: 66.7%"]:
        assert line in out


def test_thousands_separator(capsys):
    cfg = get_cfg_default()
    ev = build_evaluator(cfg, lab2cname={0: "a", 1: "b"})
    ev.process(torch.zeros(1500, 2), torch.zeros(1500, dtype=torch.long))
    ev.evaluate()
    assert "* total: 1,500" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "amsgrad", "rmsprop", "radam"])
def test_optimisers(name):
    cfg = get_cfg_default()
    cfg.OPTIM.NAME = name
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg.OPTIM)
    assert opt.param_groups[0]["lr"] == cfg.OPTIM.LR
    cfg.OPTIM.NAME = "sdg"
    # both name the bad value; the builtin message also names the key (Dassl's says "optim must be ...")
    with pytest.raises(ValueError, match="OPTIM.NAME.*sdg" if engine.BACKEND == "builtin" else "sdg"):
        build_optimizer(torch.nn.Linear(2, 2), cfg.OPTIM)


def _lrs(cfg, steps, build=build_lr_scheduler):
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg.OPTIM)
    sched = build(opt, cfg.OPTIM)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_cosine_with_linear_and_constant_warmup():
    cfg = get_cfg_default()
    cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.MAX_EPOCH = "sgd", 1.0, "cosine", 4
    assert _lrs(cfg, 5) == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466, 0.0], abs=1e-6)
    # warm-up through engine.schedulers (on builtin the same function as engine.build_lr_scheduler): real
    # Dassl 0.6.3's warm-up schedulers fail on torch 2.x, so trainers that run on both build them there
    warm = schedulers.build_lr_scheduler
    cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_MIN_LR = 2, "linear", 0.01
    assert _lrs(cfg, 4, warm) == pytest.approx([0.01, 0.5, 1.0, 0.8535534], abs=1e-6)
    cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_CONS_LR = "constant", 0.05
    assert _lrs(cfg, 4, warm) == pytest.approx([0.05, 0.05, 1.0, 0.8535534], abs=1e-6)


def test_single_and_multi_step():
    cfg = get_cfg_default()
    cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.STEPSIZE, cfg.OPTIM.GAMMA = "sgd", 1.0, (2,), 0.1
    assert _lrs(cfg, 4) == pytest.approx([1.0, 1.0, 0.1, 0.1])
    cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.STEPSIZE = "multi_step", (1, 3)
    assert _lrs(cfg, 4) == pytest.approx([1.0, 0.1, 0.1, 0.01])
