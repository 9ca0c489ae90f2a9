"""The protocol runner scripts base2new.sh and xd.sh through a fake train.py (tests/fake_workspace.py): the runs
they launch, resume, options and refusals, and their stop on SIGTERM (their tables: test_scripts_protocol_tables.py)."""
import json
import subprocess
import sys

import pytest

from tests.fake_workspace import SCRIPTS, out_dir
from tests.protocol_workspace import protocols, ws  # noqa: F401  (fixture)


def test_base2new_script_trains_on_base_then_tests_new(ws):
    res = ws.run("base2new.sh", "ar", "eurosat")
    assert res.returncode == 0, res.stderr + res.stdout
    argvs = ws.launched()
    common = ["--root", ws.env["DATA"], "--trainer", "AR",
              "--dataset-config-file", "configs/datasets/eurosat.yaml",
              "--config-file", "configs/trainers/AR/vit_b16.yaml"]
    expected = []
    for seed in (1, 2, 3):
        train = f"out/base2new/train_base/eurosat/AR/vit_b16_16shots/seed{seed}"
        test = f"out/base2new/test_new/eurosat/AR/vit_b16_16shots/seed{seed}"
        expected.append(["train.py", "--root", ws.env["DATA"], "--seed", str(seed), "--trainer", "AR",
                         *common[4:], "--output-dir", train,
                         "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"])
        expected.append(["train.py", "--root", ws.env["DATA"], "--seed", str(seed), "--trainer", "AR",
                         *common[4:], "--output-dir", test, "--eval-only", "--model-dir", train,
                         "--load-epoch", "12",
                         "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new"])
    assert argvs == expected
    assert "done 6 / failed 0 / skipped 0" in res.stdout

    # resume: a killed new-class test and a corrupt results.json run again, the rest is skipped
    (ws.root / "out/base2new/test_new/eurosat/AR/vit_b16_16shots/seed2/results.json").unlink()
    (ws.root / "out/base2new/train_base/eurosat/AR/vit_b16_16shots/seed3/results.json").write_text("{")
    res = ws.run("base2new.sh", "AR", "eurosat")
    assert res.returncode == 0, res.stderr
    assert [out_dir(a) for a in ws.launched()] == [
        "out/base2new/test_new/eurosat/AR/vit_b16_16shots/seed2",
        "out/base2new/train_base/eurosat/AR/vit_b16_16shots/seed3",
        "out/base2new/test_new/eurosat/AR/vit_b16_16shots/seed3"]
    assert "results.json is corrupt" in res.stdout and "done 2 / failed 0 / skipped 4" not in res.stdout
    assert "done 3 / failed 0 / skipped 3" in res.stdout


def test_base2new_failed_training_skips_its_test(ws):
    res = ws.run("base2new.sh", "dvp_cls", "dtd", "vit_b16", SEEDS="1 2",
                 FAKE_FAIL="train_base/dtd/DVP_CLS/vit_b16_16shots/seed1")
    assert res.returncode == 1
    assert [out_dir(a) for a in ws.launched()] == [
        "out/base2new/train_base/dtd/DVP_CLS/vit_b16_16shots/seed1",
        "out/base2new/train_base/dtd/DVP_CLS/vit_b16_16shots/seed2",
        "out/base2new/test_new/dtd/DVP_CLS/vit_b16_16shots/seed2"]
    assert "test on new classes ... not run (its training run" in res.stdout
    assert "done 2 / failed 2 / skipped 0" in res.stdout


def test_base2new_bad_names_fail_before_any_run(ws):
    res = ws.run("base2new.sh", "ar", "cifar10")
    assert res.returncode == 2 and ws.launched() == []
    assert res.stderr.startswith("ERROR: unknown dataset(s) cifar10; configs/datasets has:")
    res = ws.run("base2new.sh", "nope", "dtd")
    assert res.returncode == 2 and "ERROR: unknown method 'nope'" in res.stderr
    res = ws.run("base2new.sh", "ar")
    assert res.returncode == 2 and "usage: bash scripts/base2new.sh METHOD DATASET [CFG]" in res.stderr


def test_protocol_scripts_take_trailing_options_and_a_dry_run(ws):
    """Issue 19: base2new.sh and xd.sh take KEY VALUE options and --dry-run, as scripts/method.sh does."""
    res = ws.run("base2new.sh", "ar", "eurosat", "--dry-run", "OPTIM.MAX_EPOCH", "2", SEEDS="1")
    assert res.returncode == 0, res.stderr
    assert ws.launched() == [] and not (ws.root / "out").exists()
    assert "dry run: 2 would run, 0 skipped" in res.stdout and "OPTIM.MAX_EPOCH 2" in res.stdout
    res = ws.run("base2new.sh", "ar", "eurosat", "rn50", "OPTIM.MAX_EPOCH", "2", SEEDS="1")
    assert res.returncode == 2 and "no config 'rn50' for AR" in res.stderr  # CFG still comes before the options
    res = ws.run("base2new.sh", "ar", "eurosat", "OPTIM.MAX_EPOCH", "2", SEEDS="1")
    assert res.returncode == 0, res.stderr
    assert [a[-6:] for a in ws.launched()] == [
        ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "2"],
        ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new", "OPTIM.MAX_EPOCH", "2"]]
    res = ws.run("base2new.sh", "ar", "eurosat", "OPTIM.MAX_EPOCH", "2", SEEDS="1")  # the done check sees them
    assert res.returncode == 0 and ws.launched() == [] and "skipped 2" in res.stdout
    empty = ws.root / "no_data"
    empty.mkdir()  # the dry run applies the same done check as the run, data included
    res = ws.run("base2new.sh", "ar", "eurosat", "--dry-run", "OPTIM.MAX_EPOCH", "2", SEEDS="1", DATA=str(empty))
    assert res.returncode == 0 and "dry run: 2 would run, 0 skipped" in res.stdout, res.stdout
    assert res.stdout.count("data not found: no dataset folder") == 2
    # a DATASET.* option chooses other data: its runs get their own folders (runs/layout.py), as method.sh's do
    res = ws.run("base2new.sh", "ar", "eurosat", "--dry-run", "DATASET.DESCRIPTIONS_KEY", "mine", SEEDS="1")
    assert res.returncode == 0 and "dry run: 2 would run, 0 skipped" in res.stdout, res.stdout
    assert res.stdout.count("/eurosat--descriptions_key-mine/AR/") == 2
    res = ws.run("xd.sh", "zsclip", "OPTIM.MAX_EPOCH", "2", SEEDS="1", XD_TARGETS="dtd")
    assert res.returncode == 0, res.stderr
    assert all(a[-2:] == ["OPTIM.MAX_EPOCH", "2"] for a in ws.launched()) and len(ws.launched()) == 2


@pytest.mark.parametrize("opts, needle", [
    (("DATASET.SUBSAMPLE_CLASSES", "all"), "'DATASET.SUBSAMPLE_CLASSES' cannot be given as an option: it is set by "
                                           "the protocol"),
    (("DATASET.NUM_SHOTS", "4"), "'DATASET.NUM_SHOTS' cannot be given as an option"),
    (("OPTIM.LRR", "1"), "Unknown config key: OPTIM.LRR"),
])
def test_protocol_options_are_checked_before_any_run(ws, opts, needle):
    for res in (ws.run("base2new.sh", "ar", "eurosat", *opts, FAKE_BAD_OPT="OPTIM.LRR"),
                ws.run("xd.sh", "ar", "vit_b16", *opts, FAKE_BAD_OPT="OPTIM.LRR")):
        assert res.returncode == 2 and needle in res.stderr, res.stderr
    assert ws.launched() == [] and not (ws.root / "out").exists()


@pytest.mark.parametrize("method,trainer,why", [
    ("tipadapter", "TipAdapter", "the cache's values are one-hot labels of the training classes"),
    ("LinearProbe", "LinearProbe", "the logistic regression has one weight row and bias per training class"),
    ("lpplusplus", "LPPlusPlus", "text blend factors alpha are per training class")])
def test_base2new_is_refused_before_any_run_for_a_method_that_cannot_score_unseen_classes(ws, method, trainer,
                                                                                          why):
    ws.write(f"configs/trainers/{trainer}/vit_b16.yaml", "{}\n")
    res = ws.run("base2new.sh", method, "eurosat")
    assert res.returncode == 2 and ws.launched() == [] and res.stdout == ""
    assert res.stderr.startswith(f"ERROR: the base-to-new protocol is not applicable to {trainer}: it cannot "
                                 "score classes it was not trained on (")
    assert why in res.stderr and f"bash scripts/{trainer.lower()}.sh DATASET SHOTS" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_xd_script_trains_on_imagenet_and_tests_every_target(ws):
    res = ws.run("xd.sh", "ar", SEEDS="1")
    assert res.returncode == 0, res.stderr + res.stdout
    argvs = ws.launched()
    train = "out/xd/train/imagenet/AR/vit_b16_16shots/seed1"
    assert out_dir(argvs[0]) == train and "--eval-only" not in argvs[0]
    assert argvs[0][-4:] == ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "all"]
    targets = protocols.XD_TARGETS + protocols.DG_TARGETS
    assert len(targets) == 14 and [out_dir(a) for a in argvs[1:]] == [
        f"out/xd/test/{t}/AR/vit_b16_16shots/seed1" for t in targets]
    for argv, target in zip(argvs[1:], targets, strict=False):
        assert argv[argv.index("--dataset-config-file") + 1] == f"configs/datasets/{target}.yaml"
        i = argv.index("--eval-only")
        assert argv[i:i + 5] == ["--eval-only", "--model-dir", train, "--load-epoch", "12"]
    # everything finished: a second call launches nothing
    res = ws.run("xd.sh", "ar", SEEDS="1")
    assert ws.launched() == [] and "done 0 / failed 0 / skipped 15" in res.stdout


def test_an_edited_trainer_config_reruns_training_and_its_tests(ws):
    """Old code: the runs of the old config were skipped (results.json had accuracy, method and classes)."""
    env = dict(SEEDS="1", XD_TARGETS="dtd eurosat")
    assert ws.run("xd.sh", "ar", **env).returncode == 0 and len(ws.launched()) == 3
    ws.write("configs/trainers/AR/vit_b16.yaml", "OPTIM:\n  MAX_EPOCH: 5\n")
    res = ws.run("xd.sh", "ar", **env)
    assert res.returncode == 0, res.stderr + res.stdout
    assert [out_dir(a) for a in ws.launched()] == ["out/xd/train/imagenet/AR/vit_b16_16shots/seed1",
                                                   "out/xd/test/dtd/AR/vit_b16_16shots/seed1",
                                                   "out/xd/test/eurosat/AR/vit_b16_16shots/seed1"]
    assert "OPTIM.MAX_EPOCH not recorded (config sets 5)" in res.stdout
    res = ws.run("xd.sh", "ar", **env)
    assert ws.launched() == [] and "done 0 / failed 0 / skipped 3" in res.stdout
    assert ws.run("base2new.sh", "ar", "dtd", SEEDS="1").returncode == 0  # base2new: the same rule
    ws.write("configs/datasets/dtd.yaml", "DATASET:\n  NAME: X\n  NUM_LABELED: 2\n")
    res = ws.run("base2new.sh", "ar", "dtd", SEEDS="1")
    assert [out_dir(a) for a in ws.launched()] == ["out/base2new/train_base/dtd/AR/vit_b16_16shots/seed1",
                                                   "out/base2new/test_new/dtd/AR/vit_b16_16shots/seed1"]


def test_a_test_reruns_after_its_training_run_was_redone_in_an_earlier_invocation(ws):
    """Old code: a test was rerun only when its training run was redone in the same invocation; one that
    was interrupted before the test ran left the old model's test result, skipped ever after."""
    env = dict(SEEDS="1", XD_TARGETS="dtd")
    train, test = "out/xd/train/imagenet/AR/vit_b16_16shots/seed1", "out/xd/test/dtd/AR/vit_b16_16shots/seed1"
    assert ws.run("xd.sh", "ar", **env).returncode == 0
    (ws.root / train / "results.json").unlink()  # the training run is redone, its test does not finish
    res = ws.run("xd.sh", "ar", FAKE_FAIL="xd/test/dtd", **env)
    assert res.returncode == 1 and [out_dir(a) for a in ws.launched()] == [train, test]
    res = ws.run("xd.sh", "ar", **env)
    assert res.returncode == 0 and [out_dir(a) for a in ws.launched()] == [test]
    assert "running again: its training run was run again since" in res.stdout
    assert ws.run("xd.sh", "ar", **env).stdout.count("skip (results.json exists)") == 2
    tested = json.loads((ws.root / test / "tested_model.json").read_text())
    assert tested["model_dir"] == train and list(tested["checkpoints"]) == ["prompt_learner/model.pth.tar-12"]
    (ws.root / test / "tested_model.json").unlink()  # a test that does not say what it tested is redone
    res = ws.run("xd.sh", "ar", **env)
    assert [out_dir(a) for a in ws.launched()] == [test] and "tested_model.json is missing" in res.stdout


def test_xd_tests_a_per_class_head_on_the_imagenet_variants_only(ws):
    """Old code: TaskRes was tested on the ten other datasets too (each run one ERROR: unseen classes)."""
    ws.write("configs/trainers/TaskRes/vit_b16.yaml", "{}\n")
    res = ws.run("xd.sh", "taskres", SEEDS="1")
    assert res.returncode == 0, res.stderr + res.stdout
    assert [out_dir(a) for a in ws.launched()] == ["out/xd/train/imagenet/TaskRes/vit_b16_16shots/seed1"] + [
        f"out/xd/test/{t}/TaskRes/vit_b16_16shots/seed1" for t in protocols.DG_TARGETS]
    assert "Note: TaskRes cannot score classes it was not trained on (the residual has one learned row" in res.stdout
    res = ws.run("xd.sh", "taskres", XD_TARGETS="imagenet_a dtd", SEEDS="1")
    assert res.returncode == 2 and ws.launched() == [] and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("ERROR: the cross-dataset target(s) dtd are not applicable to TaskRes")


def test_xd_zero_shot_loads_no_model(ws):
    res = ws.run("xd.sh", "zsclip", XD_TARGETS="dtd imagenet_a", SEEDS="2")
    assert res.returncode == 0, res.stderr
    argvs = ws.launched()
    assert [out_dir(a) for a in argvs] == ["out/xd/train/imagenet/ZeroshotCLIP/vit_b16_16shots/seed2",
                                           "out/xd/test/dtd/ZeroshotCLIP/vit_b16_16shots/seed2",
                                           "out/xd/test/imagenet_a/ZeroshotCLIP/vit_b16_16shots/seed2"]
    assert all("--eval-only" in a and "--model-dir" not in a for a in argvs)


def test_sigterm_stops_the_running_run_and_a_rerun_resumes(ws):
    import os
    import signal
    import time

    env = dict(ws.env, SEEDS="1", FAKE_SLEEP_IN="test_new")
    proc = subprocess.Popen(["/bin/bash", str(SCRIPTS / "base2new.sh"), "ar", "dtd"], cwd=ws.root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = ws.root / "out/base2new/test_new/dtd/AR/vit_b16_16shots/seed1/pid"
    deadline = time.time() + 30
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run the same command again to resume" in err
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the running train.py was stopped, not left behind
        os.kill(child, 0)
    res = ws.run("base2new.sh", "ar", "dtd", SEEDS="1")
    assert res.returncode == 0
    assert [out_dir(a) for a in ws.launched()] == ["out/base2new/test_new/dtd/AR/vit_b16_16shots/seed1"]
    assert "train on base classes ... skip" in res.stdout


def test_a_step_another_process_runs_is_left_alone(tmp_path):
    """Two copies of base2new.sh / xd.sh: the second finds the run locked (the sweep's per-run lock) and
    neither starts train.py for it nor counts it as done; once free, it runs."""
    from runs.launcher import run_lock

    marker = tmp_path / "started"
    python = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    step = protocols.Step("AR dtd seed 1: train on base classes", str(tmp_path / "run"), "AR", "base",
                          ("dtd", "vit_b16", 1), None)
    with run_lock(step.folder) as held:
        assert held is not None
        state, detail = protocols.launch(step, python, str(tmp_path / "data"))
    assert (state, marker.exists()) == ("busy", False), detail
    state, detail = protocols.launch(step, python, str(tmp_path / "data"))
    assert marker.exists() and state == "failed" and "no results.json" in detail
