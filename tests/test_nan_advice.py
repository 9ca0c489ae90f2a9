"""The NaN-loss advice fits the precision the run used (issue 19: "use fp32" was said to fp32 runs)."""
from types import SimpleNamespace

import torch

import train
from plugins import project_cfg
from tests.toy_runs import TOY


def fake_trainer(node, key, precision, device):
    cfg = project_cfg()
    cfg.TRAINER[node][key] = precision
    return SimpleNamespace(cfg=cfg, NODE=node, device=torch.device(device), epoch=1, max_epoch=4, batch_idx=0,
                           num_batches=3)


def test_the_advice_names_the_precision_key_only_when_the_run_was_not_fp32():
    err = FloatingPointError("Loss is infinite or NaN!")
    on_cpu = train.nan_message(err, fake_trainer("AR", "PRECISION", "fp16", "cpu"))  # fp16 runs as fp32 on a CPU
    assert "(epoch 2/4, batch 1/3)" in on_cpu and on_cpu.endswith("Lower OPTIM.LR (this run already trained in fp32).")
    on_gpu = train.nan_message(err, fake_trainer("AR", "PRECISION", "fp16", "cuda"))
    assert on_gpu.endswith("train in fp32: TRAINER.AR.PRECISION fp32 (this run used fp16).")
    coop = train.nan_message(err, fake_trainer("COOP", "PREC", "amp", "cuda"))
    assert "TRAINER.COOP.PREC fp32 (this run used amp)" in coop
    assert "fp32" not in train.nan_message(err, fake_trainer("COOP", "PREC", "fp32", "cuda")).split("(this")[0]


def test_a_nan_loss_of_an_fp32_trainer_does_not_advise_fp32(toy_root, tmp_path, capsys, monkeypatch):
    import tests.toy_plugin  # noqa: F401

    monkeypatch.setenv("TOY_NAN_AT_EPOCH", "1")
    assert train.main(["--root", toy_root, "--output-dir", str(tmp_path / "nan")] + TOY) == 1
    err = capsys.readouterr().err
    assert "Loss is infinite or NaN! (epoch 1/4, batch 1/" in err
    assert err.strip().endswith("Lower OPTIM.LR.") and "use fp32" not in err
