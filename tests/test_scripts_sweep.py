"""scripts/sweep.sh through a fake train.py (tests/fake_workspace.py): the grid, sweep files, dry runs, --gpus and
--slurm, kills and interrupts, the options it passes and checks."""
import os
import signal
import subprocess
import time

import pytest

from tests.fake_workspace import SCRIPTS
from tests.sweep_workspace import ws  # noqa: F401  (fixture)


@pytest.mark.slow
def test_sweep_runs_grid_in_order_and_resumes(ws):
    args = ["--methods", "ar dvp_cls", "--datasets", "caltech101 dtd", "--shots", "1 16",
            "--seeds", "1 2 3"]
    ws.finish("dtd/AR/vit_b16_1shots/seed1")
    ws.write("out/dtd/AR/vit_b16_1shots/seed2/log.txt", "crashed\n")
    res = ws.run("sweep.sh", *args, FAKE_FAIL="DVP_CLS/vit_b16_16shots/seed3")
    assert res.returncode == 1
    assert "[3/24] ar caltech101 1 shots seed 3 ... running" in res.stdout
    assert "[7/24] ar dtd 1 shots seed 1 ... skip" in res.stdout
    assert "[24/24] dvp_cls dtd 16 shots seed 3 ... FAILED" in res.stdout
    assert "summary: 24 runs: done 21 / failed 2 / skipped 1" in res.stdout
    dirs = ws.launched_dirs()
    assert len(dirs) == 23 and dirs[0] == "out/caltech101/AR/vit_b16_1shots/seed1"
    assert dirs[6] == "out/dtd/AR/vit_b16_1shots/seed2"  # crashed folder is re-run
    summary = list((ws.root / "out" / "sweeps").glob("*/summary.txt"))
    assert len(summary) == 1 and "failed 2" in summary[0].read_text()

    # Second run of the same command: only the two failed runs are launched again.
    ws.record.unlink()
    res = ws.run("sweep.sh", *args)
    assert res.returncode == 0, res.stdout
    assert sorted(ws.launched_dirs()) == ["out/caltech101/DVP_CLS/vit_b16_16shots/seed3",
                                          "out/dtd/DVP_CLS/vit_b16_16shots/seed3"]
    assert "done 2 / failed 0 / skipped 22" in res.stdout


def test_sweep_file_and_cli_override(ws):
    ws.write("grid.txt", "# small grid\nmethods = zsclip AR   # trainer names work too\n"
                         "datasets = dtd\nshots = 16\nseeds = 1 2\ncfg = vit_b16\n")
    res = ws.run("sweep.sh", "--file", "grid.txt", "--seeds", "5")
    assert res.returncode == 0, res.stderr
    assert ws.launched_dirs() == ["out/dtd/ZeroshotCLIP/vit_b16_16shots/seed5",
                                  "out/dtd/AR/vit_b16_16shots/seed5"]
    assert (ws.root / "out/sweeps/grid/jobs.txt").read_text().count("\n") == 2

    ws.write("bad.txt", "methods = ar\nepochs = 3\n")
    res = ws.run("sweep.sh", "--file", "bad.txt")
    assert res.returncode == 2 and "bad.txt:2: unknown key 'epochs'" in res.stderr


@pytest.mark.parametrize("args,needle", [
    (["--methods", "ar dvp", "--datasets", "dtd", "--shots", "1"], "unknown method 'dvp'"),
    (["--methods", "ar", "--datasets", "dtd food101", "--shots", "1"],
     "unknown dataset 'food101'"),
    (["--methods", "ar vp", "--datasets", "dtd", "--shots", "1", "--cfg", "rn50"],
     "unknown config for VP 'rn50'; configs/trainers/VP has: vit_b16"),
    (["--methods", "ar", "--datasets", "dtd"], "a sweep needs methods, datasets and shots"),
])
def test_sweep_rejects_unknown_names_before_launching(ws, args, needle):
    res = ws.run("sweep.sh", *args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert ws.launched() == []


def test_sweep_dry_run_launches_nothing(ws):
    res = ws.run("sweep.sh", "--methods", "ar", "--datasets", "dtd", "--shots", "2",
                 "--seeds", "1", "--dry-run")
    assert res.returncode == 0
    assert f"would run (no results.json): {ws.fake} train.py --root {ws.env['DATA']} --seed 1" in res.stdout
    assert "dry run: 1 would run, 0 skipped" in res.stdout
    assert ws.launched() == []


def test_sweep_gpus_mode_one_run_per_gpu(ws):
    res = ws.run("sweep.sh", "--methods", "ar vp", "--datasets", "caltech101 dtd",
                 "--shots", "4", "--seeds", "1", "--mode", "gpus", "--gpus", "0,1",
                 FAKE_FAIL="VP/vit_b16_4shots")
    assert res.returncode == 1
    runs = ws.launched()
    assert len(runs) == 4
    assert {r["gpu"] for r in runs} <= {"0", "1"}
    assert all(r["gpu"] is not None for r in runs)
    assert "done 2 / failed 2 / skipped 0" in res.stdout
    logs = sorted(p.name for p in (ws.root / "out/sweeps").glob("*/logs/*.log"))
    assert "dtd_VP_vit_b16_4shots_seed1.log" in logs and len(logs) == 4

    res = ws.run("sweep.sh", "--methods", "ar", "--datasets", "dtd", "--shots", "4",
                 "--mode", "gpus")
    assert res.returncode == 2 and "nvidia-smi not found" in res.stderr


def test_sweep_slurm_without_sbatch_writes_script_and_fails(ws):
    ws.finish("dtd/AR/vit_b16_16shots/seed1")
    args = ["--methods", "ar", "--datasets", "dtd", "--shots", "16", "--seeds", "1 2",
            "--mode", "slurm", "--name", "s1", "--slurm-args", "--partition=gpu --time 2:00:00"]
    res = ws.run("sweep.sh", *args)
    assert res.returncode == 2
    script = ws.root / "out/sweeps/s1/slurm/001/array-0.slurm"
    assert "sbatch not found on PATH" in res.stderr and str(script) in res.stderr
    text = script.read_text()
    assert "#SBATCH --array=0-0" in text  # only the unfinished run
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --time 2:00:00" in text
    assert "#SBATCH --gres=gpu:1" in text and "#SBATCH --signal=B:USR1@300" in text
    assert ws.launched() == []

    # The array task runs its pack of the submission through the same runner.
    task = subprocess.run(["/bin/bash", str(script)], cwd="/", capture_output=True, text=True,
                          env=dict(ws.env, SLURM_ARRAY_TASK_ID="0"), timeout=60)
    assert task.returncode == 0, task.stderr
    assert ws.launched_dirs() == ["out/dtd/AR/vit_b16_16shots/seed2"]
    assert (ws.root / "out/sweeps/s1/logs/dtd_AR_vit_b16_16shots_seed2.log").exists()

    res = ws.run("sweep.sh", *args)
    assert res.returncode == 0 and "nothing to submit" in res.stdout


def test_sweep_slurm_dry_run_and_submit(ws):
    args = ["--methods", "vp", "--datasets", "dtd", "--shots", "1", "--mode", "slurm",
            "--name", "s2", "--max-parallel", "2"]
    res = ws.run("sweep.sh", *args, "--dry-run", "--pack-minutes", "0")
    assert res.returncode == 0
    assert "#SBATCH --array=0-2%2" in res.stdout

    sbatch = ws.write("bin/sbatch", "#!/bin/bash\necho \"$@\" >> sbatch.args; echo 42\n")
    sbatch.chmod(0o755)
    res = ws.run("sweep.sh", *args, "--pack-minutes", "0")
    assert res.returncode == 0, res.stderr
    script = ws.root / "out/sweeps/s2/slurm/002/array-0.slurm"  # 001 was the dry run's
    assert f"submitted array job 42: tasks 0..2 ({script})" in res.stdout
    assert (ws.root / "sbatch.args").read_text() == f"--parsable {script}\n"
    assert ws.launched() == []


def test_killed_sweep_stops_its_run_and_resumes(ws):
    args = ["--methods", "ar", "--datasets", "dtd", "--shots", "8", "--seeds", "1 2"]
    proc = subprocess.Popen(["/bin/bash", str(SCRIPTS / "sweep.sh"), *args], cwd=ws.root,
                            env=dict(ws.env, FAKE_SLEEP="60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not ws.launched() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err and "not finished (interrupted): 2" in out
    (first,) = ws.launched()
    with pytest.raises(ProcessLookupError):  # the training process was stopped too
        for _ in range(100):
            os.kill(first["pid"], 0)
            time.sleep(0.05)

    res = ws.run("sweep.sh", *args)
    assert res.returncode == 0 and "done 2 / failed 0 / skipped 0" in res.stdout
    assert ws.launched_dirs()[1:] == ["out/dtd/AR/vit_b16_8shots/seed1",
                                      "out/dtd/AR/vit_b16_8shots/seed2"]


@pytest.mark.parametrize("opts, needle", [
    (("DATASET.NUM_SHOTS", "8"), "'DATASET.NUM_SHOTS' cannot be given as an option: it is set by the SHOTS argument"),
    (("SEED", "7"), "'SEED' cannot be given as an option: it is set by the seeds ($SEEDS"),
    (("OUTPUT_DIR", "x"), "'OUTPUT_DIR' cannot be given as an option"),
    (("TRAINER.NAME", "VP"), "set by the METHOD argument"),
])
def test_options_that_contradict_the_arguments_are_refused_before_any_run(ws, opts, needle):
    """Issue 19: `ar.sh dtd 4 DATASET.NUM_SHOTS 8` trained 8 shots into a 4-shot folder and reported FAILED."""
    for res in (ws.run("ar.sh", "dtd", "4", *opts),
                ws.run("sweep.sh", "--methods", "ar", "--datasets", "dtd", "--shots", "4", "--opts", " ".join(opts))):
        assert res.returncode == 2 and needle in res.stderr, res.stderr
    assert ws.launched() == [] and not (ws.root / "out/dtd").exists()


def test_option_keys_are_checked_once_per_sweep_before_the_first_run(ws):
    """Issue 19: OPTIM.LRR was found by train.py only, after seconds and one failed folder per seed."""
    res = ws.run("sweep.sh", "--methods", "ar vp", "--datasets", "dtd caltech101", "--shots", "2", "--seeds", "1 2",
                 "--opts", "OPTIM.LRR 0.1", FAKE_BAD_OPT="OPTIM.LRR")
    assert res.returncode == 2
    assert 'config options: Unknown config key: OPTIM.LRR (do you mean OPTIM.LR?)' in res.stderr
    assert ws.launched() == [] and not (ws.root / "out/dtd").exists()
    assert ws.option_checks() == [["train.py", "--check-opts", "OPTIM.LRR", "0.1"]]  # one call for 8 runs
    res = ws.run("ar.sh", "dtd", "2", "OPTIM.LRR", "0.1", FAKE_BAD_OPT="OPTIM.LRR")
    assert res.returncode == 2 and "OPTIM.LRR" in res.stderr and ws.launched() == []
    res = ws.run("ar.sh", "dtd", "2", "OPTIM.LR", "0.1", SEEDS="1 2")
    assert res.returncode == 0 and len(ws.launched()) == 2 and len(ws.option_checks()) == 3


def test_sweep_opts_reach_every_run_and_the_slurm_job_file(ws):
    res = ws.run("sweep.sh", "--methods", "vp", "--datasets", "dtd", "--shots", "2", "--seeds", "1",
                 "--opts", "OPTIM.MAX_EPOCH 3")
    assert res.returncode == 0, res.stderr
    (argv,) = [r["argv"] for r in ws.launched()]
    assert argv[-2:] == ["OPTIM.MAX_EPOCH", "3"]
    res = ws.run("sweep.sh", "--methods", "vp", "--datasets", "dtd", "--shots", "2", "--seeds", "1 2",
                 "--opts", "OPTIM.MAX_EPOCH 3", "--mode", "slurm", "--name", "o")
    assert res.returncode == 2  # no sbatch; only seed 2 is unfinished
    assert (ws.root / "out/sweeps/o/slurm/001/jobs.txt").read_text() == "vp\tdtd\t2\tvit_b16\t2\tOPTIM.MAX_EPOCH\t3\n"


@pytest.mark.parametrize("name", ["../../..", "a/b", "..", "a\\b", "/tmp/x"])
def test_sweep_name_with_path_parts_is_rejected(ws, name):
    """Issue 10 defect 9: --name cannot put the sweep folder outside $OUTPUT/sweeps."""
    res = ws.run("sweep.sh", "--methods", "ar", "--datasets", "dtd", "--shots", "1", "--seeds", "1",
                 "--name", name, OUTPUT="a/b/out")  # ../../.. would be the workspace itself
    assert res.returncode == 2
    assert f"sweep name {name!r} must be a plain folder name" in res.stderr
    assert ws.launched() == [] and not list(ws.root.rglob("jobs.txt"))


def test_sweep_files_get_the_usual_permissions(ws):
    """Issue 10 defect 9: job files and summaries are readable by others (umask 022), not 0600."""
    args = ["--methods", "ar", "--datasets", "dtd", "--shots", "2", "--seeds", "1", "--name", "p"]
    env = dict(ws.env)
    run = subprocess.run(["/bin/bash", "-c", 'umask 022; exec /bin/bash "$@"', "-", str(SCRIPTS / "sweep.sh"),
                          *args], cwd=ws.root, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    run = subprocess.run(["/bin/bash", "-c", 'umask 022; exec /bin/bash "$@"', "-", str(SCRIPTS / "sweep.sh"),
                          *args[:-2], "--seeds", "2", "--name", "q", "--mode", "slurm"],
                         cwd=ws.root, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2  # no sbatch: the script is written all the same
    modes = {p.relative_to(ws.root / "out/sweeps").as_posix(): p.stat().st_mode & 0o777
             for p in (ws.root / "out/sweeps").rglob("*") if p.is_file()}
    assert modes == {"p/jobs.txt": 0o644, "p/summary.txt": 0o644, "q/jobs.txt": 0o644,
                     "q/slurm/001/jobs.txt": 0o644, "q/slurm/001/packs.txt": 0o644,
                     "q/slurm/001/array-0.slurm": 0o755}


def test_ctrl_c_in_gpus_mode_reports_interrupted_runs_not_failed(ws):
    """Issue 10 defect 10: Ctrl-C reaches the sweep and its train.py children (one process group)."""
    args = ["--methods", "ar", "--datasets", "dtd", "--shots", "8", "--seeds", "1 2 3",
            "--mode", "gpus", "--gpus", "0,1"]
    proc = subprocess.Popen(["/bin/bash", str(SCRIPTS / "sweep.sh"), *args], cwd=ws.root,
                            env=dict(ws.env, FAKE_SLEEP="60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 30
    while len(ws.launched()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the children are in their sleep
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "FAILED" not in out and "failed 0" in out, out
    assert out.count("... interrupted (") == 2, out
    assert "not finished (interrupted): 3" in out


def test_a_sweep_checks_each_run_once_before_launching_it(ws, monkeypatch, capsys):
    """Issue 12: the done check runs once per job to plan the sweep and once under the job's run lock
    (another process may have finished it since), then once on the finished run: not 5 times."""
    import importlib.util

    from runs import layout

    ws.finish("dtd/AR/vit_b16_16shots/seed1")
    calls = []
    check_done = layout.check_done
    monkeypatch.setattr(layout, "check_done",
                        lambda folder, *a, **kw: calls.append(folder) or check_done(folder, *a, **kw))
    for key, value in ws.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ws.root)
    spec = importlib.util.spec_from_file_location("run_one_under_test", SCRIPTS / "run_one.py")
    run_one = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_one)
    assert run_one.main(["sweep", "--methods", "ar", "--datasets", "dtd", "--shots", "16", "--seeds", "1 2"]) == 0
    out = capsys.readouterr().out
    assert "sweep" in out and "(1 finished already)" in out
    assert "[1/2] ar dtd 16 shots seed 1 ... skip (results.json matches)" in out
    assert "[2/2] ar dtd 16 shots seed 2 ... running (no results.json)" in out
    assert "done 1 / failed 0 / skipped 1" in out
    assert [os.path.basename(f) for f in calls].count("seed1") == 1
    assert [os.path.basename(f) for f in calls].count("seed2") == 3
