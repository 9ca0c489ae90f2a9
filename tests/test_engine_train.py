"""The trainer lifecycle through train.py: train, kill, resume, eval-only, results files, bad input."""
import json
import re
import sys

import pytest
import torch
import yaml

import train
from tests.conftest import run_cmd
from tests.toy_runs import TOY


def _accuracy_lines(text):
    return re.findall(r"\* accuracy: ([\d.]+)%", text)


@pytest.mark.slow
def test_train_kill_resume_then_eval_only_reproduces(toy_root, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "train.py", "--root", toy_root, "--output-dir", str(out)] + TOY
    killed = run_cmd(base, VR_PLUGINS="tests.toy_plugin", TOY_KILL_AT_EPOCH="2")
    assert killed.returncode != 0  # SIGKILL after epoch 2 was checkpointed
    assert (out / "toynet" / "model.pth.tar-2").exists()
    assert not (out / "results.json").exists()
    first_log = (out / "log.txt").read_text()

    resumed = run_cmd(base, VR_PLUGINS="tests.toy_plugin")
    assert resumed.returncode == 0, resumed.stderr
    assert "Found checkpoint" in resumed.stdout and "Previous epoch: 2" in resumed.stdout
    assert "epoch [3/4]" in resumed.stdout and "epoch [1/4]" not in resumed.stdout
    log = (out / "log.txt").read_text()
    assert log.startswith(first_log)  # the earlier log is kept
    tail = log.rstrip().splitlines()
    assert "Finish training" in log
    assert any(line.startswith("* average:") for line in tail[-12:])
    res = json.loads((out / "results.json").read_text())
    acc = res["accuracy"]
    assert _accuracy_lines(log)[-1] == f"{acc:.1f}"
    assert (out / "toynet" / "checkpoint").read_text().strip() == "model.pth.tar-4"

    ev_out = tmp_path / "eval"
    ev = run_cmd([sys.executable, "train.py", "--root", toy_root, "--output-dir", str(ev_out), "--eval-only",
                  "--model-dir", str(out), "--load-epoch", "4"] + TOY, VR_PLUGINS="tests.toy_plugin")
    assert ev.returncode == 0, ev.stderr
    res_ev = json.loads((ev_out / "results.json").read_text())
    assert res_ev["accuracy"] == pytest.approx(acc)
    assert res_ev["per_class"] == res["per_class"]


def test_results_and_config_files(toy_root, tmp_path):
    out = tmp_path / "run"
    args = train.build_parser().parse_args(["--root", toy_root, "--output-dir", str(out)] + TOY)
    import tests.toy_plugin  # noqa: F401
    res = train.run(args)
    on_disk = json.loads((out / "results.json").read_text())
    assert set(on_disk) == {"method", "dataset", "backbone", "shots", "seed", "accuracy", "macro_f1",
                            "per_class", "elapsed_s", "trainable_params", "git", "config", "versions",
                            "data_identity", "data_sources"}
    assert on_disk["trainable_params"] == 3 * 8 * 8 * 4 + 4  # a plugin trainer: its model's gradient parameters
    assert on_disk["method"] == "ToyLinear" and on_disk["dataset"] == "ToyColors" and on_disk["seed"] == 1
    assert 0 <= on_disk["accuracy"] <= 100 and 0 <= on_disk["macro_f1"] <= 100
    assert on_disk["per_class"].keys() == {"0", "1", "2", "3"}  # keyed by label, the name beside it
    assert [on_disk["per_class"][k]["name"] for k in "0123"] == ["red", "green", "blue", "yellow"]
    n_test = 4
    assert all(v["accuracy"] * n_test / 100 == pytest.approx(round(v["accuracy"] * n_test / 100))
               for v in on_disk["per_class"].values())
    identity = on_disk["data_identity"]  # flat: strings and ints only (tables group runs by it)
    assert all(isinstance(v, (str, int)) for v in identity.values())
    assert identity["num_classes"] == 4 and identity["num_test"] == 16
    assert on_disk["versions"]["torch"] == torch.__version__ and on_disk["versions"]["python"]
    # a plugin loader that records no files: its folder, relative to the data root, is what the sweep checks
    assert on_disk["data_sources"] == [{"role": "dataset_dir", "path": "toy_colors"}]
    assert on_disk["config"]["OPTIM"]["MAX_EPOCH"] == 4
    assert res["accuracy"] == on_disk["accuracy"]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["TRAINER"]["NAME"] == "ToyLinear" and cfg["SEED"] == 1
    log = (out / "log.txt").read_text()
    for line in ["=> result", "* total: 16", "* correct:", "* error:", "* macro_f1:", "=> per-class result"]:
        assert line in log
    assert re.search(r"epoch \[1/4\] batch \[1/\d+\] time [\d.]+ \([\d.]+\) data [\d.]+ \([\d.]+\) "
                     r"loss [\d.]+ \([\d.]+\) lr [\d.e+-]+ eta \d+:\d\d:\d\d", log)


def test_seeded_runs_are_deterministic(toy_root, tmp_path):
    import tests.toy_plugin  # noqa: F401
    accs = []
    for name in ("a", "b"):
        args = train.build_parser().parse_args(["--root", toy_root, "--output-dir", str(tmp_path / name)] + TOY)
        train.run(args)
        sd = torch.load(tmp_path / name / "toynet" / "model.pth.tar-4", weights_only=False)["state_dict"]
        accs.append(sd["fc.weight"])
    assert torch.equal(accs[0], accs[1])


@pytest.mark.parametrize("argv,needle", [
    (["--trainer", "ToyLinaer"], 'Unknown trainer "ToyLinaer" (do you mean "ToyLinear"?)'),
    (["--trainer", "ToyLinear", "DATASET.NAME", "ToyColours"],
     'Unknown dataset "ToyColours" (DATASET.NAME) (do you mean "ToyColors"?)'),
    (["--trainer", "ToyLinear", "DATASET.NAME", "ToyColors", "OPTIM.NOPE", "1"], "OPTIM.NOPE"),
])
def test_bad_names_fail_clearly(toy_root, tmp_path, capsys, argv, needle):
    import tests.toy_plugin  # noqa: F401
    code = train.main(["--root", toy_root, "--output-dir", str(tmp_path / "o")] + argv)
    err = capsys.readouterr().err
    assert code == 1 and needle in err and "Traceback" not in err


def test_missing_root_and_empty_model_dir(toy_root, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401
    code = train.main(["--root", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "o")] + TOY)
    assert code == 1 and "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty_run"
    empty.mkdir()
    code = train.main(["--root", toy_root, "--output-dir", str(tmp_path / "o2"), "--eval-only",
                       "--model-dir", str(empty)] + TOY)
    err = capsys.readouterr().err
    assert code == 1 and "holds no checkpoint" in err


@pytest.mark.slow
def test_nan_loss_stops_with_epoch_and_batch_and_keeps_checkpoints(toy_root, tmp_path):
    out = tmp_path / "nan"
    proc = run_cmd([sys.executable, "train.py", "--root", toy_root, "--output-dir", str(out)] + TOY,
                   VR_PLUGINS="tests.toy_plugin", TOY_NAN_AT_EPOCH="3")
    assert proc.returncode == 1
    assert "Loss is infinite or NaN! (epoch 3/4, batch 1/" in proc.stderr
    assert (out / "toynet" / "model.pth.tar-2").exists()
    assert "Loss is infinite or NaN" in (out / "log.txt").read_text()
    assert not (out / "results.json").exists()


def test_eval_only_of_an_unrecorded_trainer_on_other_classes_is_refused(toy_root, tmp_path, capsys):
    """A trainer without run records (ToyLinear: plain TrainerX + SafeLoadModel) would load its base-class
    head for the new classes (same shape) and report it as new-class accuracy: refused, naming the key."""
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "run"
    common = ["--root", toy_root] + TOY + ["OPTIM.MAX_EPOCH", "1"]
    assert train.main(["--output-dir", str(out)] + common + ["DATASET.SUBSAMPLE_CLASSES", "base"]) == 0
    capsys.readouterr()
    ev = ["--eval-only", "--model-dir", str(out), "--load-epoch", "1"]
    new = ["DATASET.SUBSAMPLE_CLASSES", "new"]
    assert train.main(["--output-dir", str(tmp_path / "new")] + ev + common + new) == 1
    err = capsys.readouterr().err
    assert "ToyLinear does not record its classes" in err and "DATASET.SUBSAMPLE_CLASSES 'base' -> 'new'" in err
    assert not (tmp_path / "new" / "results.json").exists()
    same = ["DATASET.SUBSAMPLE_CLASSES", "base"]
    assert train.main(["--output-dir", str(tmp_path / "same")] + ev + common + same) == 0
