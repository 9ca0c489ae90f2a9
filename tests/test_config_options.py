"""Trailing KEY VALUE options are checked against the merged config tree, with the closest real key
(issue 19: OPTIM.LRR, TRAINER.AR.PADD, TEST.FINAL_MODEL bestval)."""
import pytest

import train
from tests.toy_runs import TOY


@pytest.mark.parametrize("opts, needle", [
    (["OPTIM.LRR", "0.1"], 'Unknown config key: OPTIM.LRR (do you mean "OPTIM.LR"?)'),
    (["TRAINER.AR.PADD", "3"], 'Unknown config key: TRAINER.AR.PADD (do you mean "TRAINER.AR.PAD"?)'),
    (["TEST.FINAL_MODEL", "bestval"], "TEST.FINAL_MODEL 'bestval' is not one of last_step, best_val "
                                      '(do you mean "best_val"?)'),
    (["OPTIM.MAX_EPOCH", "ten"], "Type mismatch"),
])
def test_check_opts_refuses_what_train_py_would_refuse_or_ignore(opts, needle, capsys):
    assert train.main(["--check-opts"] + opts) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_check_opts_accepts_real_keys_and_starts_nothing(tmp_path, capsys):
    opts = ["OPTIM.LR", "0.1", "TRAINER.AR.PAD", "20", "OUTPUT_DIR", str(tmp_path / "x")]
    assert train.main(["--check-opts"] + opts) == 0
    assert "config files and options: OK" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def test_best_val_without_a_validation_split_is_refused_before_training(toy_root, tmp_path, capsys, monkeypatch):
    """Dassl's best_val would pick the epoch on the test images when the dataset has no val split."""
    import tests.toy_plugin as toy

    original = toy.ToyColors.__init__

    def no_val(self, cfg):
        original(self, cfg)
        self._val = None

    monkeypatch.setattr(toy.ToyColors, "__init__", no_val)
    out = tmp_path / "run"
    code = train.main(["--root", toy_root, "--output-dir", str(out)] + TOY + ["TEST.FINAL_MODEL", "best_val"])
    assert code == 1
    assert "has no validation split" in capsys.readouterr().err
    assert not (out / "config.yaml").exists() and not list(out.glob("*/model.pth.tar-*"))
