"""scripts/<method>.sh and scripts/method.sh (the generic runner) through a fake train.py (tests/fake_workspace.py):
the commands they launch, their trainer, their options and their bad-input errors."""
import pytest

from runs import catalogue
from tests.fake_workspace import SCRIPTS
from tests.sweep_workspace import METHODS, ws  # noqa: F401  (fixture)


def test_method_script_runs_coop_command_per_seed(ws):
    res = ws.run("ar.sh", "caltech101", "16")
    assert res.returncode == 0, res.stderr
    argvs = [r["argv"] for r in ws.launched()]
    assert argvs == [
        ["train.py", "--root", ws.env["DATA"], "--seed", str(seed), "--trainer", "AR",
         "--dataset-config-file", "configs/datasets/caltech101.yaml",
         "--config-file", "configs/trainers/AR/vit_b16.yaml",
         "--output-dir", f"out/caltech101/AR/vit_b16_16shots/seed{seed}",
         "DATASET.NUM_SHOTS", "16"] for seed in (1, 2, 3)]  # a new folder: no --overwrite
    assert "[2/3] ar caltech101 16 shots seed 2 ... done" in res.stdout
    assert "done 3 / failed 0 / skipped 0" in res.stdout


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.script)
def test_each_method_script_names_its_trainer(ws, method):
    script, trainer = f"{method.script}.sh", method.trainer
    res = ws.run(script, "dtd", "4", "vit_b16", SEEDS="7")
    assert res.returncode == 0, res.stderr
    (argv,) = [r["argv"] for r in ws.launched()]
    assert argv[argv.index("--trainer") + 1] == trainer
    assert argv[argv.index("--config-file") + 1] == f"configs/trainers/{trainer}/vit_b16.yaml"
    assert argv[argv.index("--output-dir") + 1] == f"out/dtd/{trainer}/vit_b16_4shots/seed7"
    assert ("--eval-only" in argv) == (not method.trains)
    assert argv[-2:] == ["DATASET.NUM_SHOTS", "4"]


def test_one_shot_runs_leave_the_batch_to_the_trainer(ws):
    """The 1-shot batch is TRAINER.<NAME>.BATCH_SIZE_1SHOT, applied by the trainer (as for train.py)."""
    assert ws.run("ar.sh", "dtd", "1", "vit_b16", SEEDS="1").returncode == 0
    assert ws.run("dvp_cls.sh", "dtd", "1", "vit_b16", SEEDS="1").returncode == 0
    for argv in [r["argv"] for r in ws.launched()]:
        assert argv[-2:] == ["DATASET.NUM_SHOTS", "1"] and "DATALOADER.TRAIN_X.BATCH_SIZE" not in argv


@pytest.mark.parametrize("args,needle", [
    (("caltech", "16"), "unknown dataset 'caltech' (do you mean \"caltech101\"?); "
                        "configs/datasets has: caltech101, dtd"),
    (("dtd", "16", "vit_l14"), "configs/trainers/AR has: rn50, vit_b16"),
    (("dtd", "x"), "SHOTS must be integers"),
    (("dtd", "0"), "shots must be >= 1"),
])
def test_method_script_rejects_bad_input_before_launching(ws, args, needle):
    res = ws.run("ar.sh", *args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert ws.launched() == []


def test_method_scripts_pass_trailing_config_options(ws):
    """Issue 10 defect 10: KEY VALUE pairs after the arguments reach train.py (with or without CFG)."""
    assert ws.run("ar.sh", "dtd", "4", "DATASET.DESCRIPTIONS_DIR", "my images", SEEDS="1").returncode == 0
    assert ws.run("ar.sh", "dtd", "4", "rn50", "OPTIM.MAX_EPOCH", "5", SEEDS="1").returncode == 0
    first, second = [r["argv"] for r in ws.launched()]
    assert first[-4:] == ["DATASET.NUM_SHOTS", "4", "DATASET.DESCRIPTIONS_DIR", "my images"]
    assert "configs/trainers/AR/vit_b16.yaml" in first
    assert second[-4:] == ["DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "5"]
    assert "configs/trainers/AR/rn50.yaml" in second

    res = ws.run("ar.sh", "dtd", "4", "OPTIM.MAX_EPOCH")
    assert res.returncode == 2 and "KEY VALUE pairs, got an odd number" in res.stderr
    res = ws.run("ar.sh", "dtd", "4", "rn50", "epochs", "5")
    assert res.returncode == 2 and "'epochs' is not a config key" in res.stderr


def test_method_script_dry_run_launches_nothing(ws):
    res = ws.run("ar.sh", "dtd", "2", "OPTIM.LR", "0.1", "--dry-run", SEEDS="1 2")
    assert res.returncode == 0, res.stderr
    assert ws.launched() == [] and "dry run: 2 would run, 0 skipped" in res.stdout
    assert "would run (no results.json): " in res.stdout
    assert "train.py --root " in res.stdout and "--seed 1 " in res.stdout


def test_generic_method_runner_takes_any_registered_trainer(ws):
    res = ws.run("method.sh", "DVP_CSE", "dtd", "4", SEEDS="1")
    assert res.returncode == 0, res.stderr
    assert ws.launched_dirs() == ["out/dtd/DVP_CSE/vit_b16_4shots/seed1"]
    res = ws.run("method.sh", "dvp", "dtd", "4")
    assert res.returncode == 2 and "unknown method 'dvp'" in res.stderr


def test_plugin_trainer_runs_through_its_own_catalogue(ws, monkeypatch):
    """A trainer registered outside trainers/ (VR_PLUGINS) reaches the scripts and sweeps through a
    catalogue written for it, without editing the repository."""
    monkeypatch.setenv("VR_PLUGINS", "tests.toy_plugin")
    path = ws.root / "plugin_trainers.json"
    written = catalogue.write(str(path))
    assert "toylinear" in {m.script for m in written}
    assert not (SCRIPTS / "toylinear.sh").exists()  # one-liners only for the repository's catalogue
    ws.write("configs/trainers/ToyLinear/vit_b16.yaml", "OPTIM:\n  MAX_EPOCH: 2\n")
    env = {"VR_TRAINER_CATALOGUE": str(path)}
    res = ws.run("method.sh", "ToyLinear", "dtd", "4", SEEDS="1", **env)
    assert res.returncode == 0, res.stderr
    res = ws.run("sweep.sh", "--methods", "toylinear ar", "--datasets", "dtd", "--shots", "4", "--seeds", "1", **env)
    assert res.returncode == 0, res.stderr
    assert "[1/2] toylinear dtd 4 shots seed 1 ... skip (results.json matches)" in res.stdout
    assert ws.launched_dirs() == ["out/dtd/ToyLinear/vit_b16_4shots/seed1", "out/dtd/AR/vit_b16_4shots/seed1"]
