"""Which runs the runner scripts count as done (through a fake train.py, tests/fake_workspace.py): a finished
run is skipped; a crashed, failed, corrupt, edited, other-data or mismatching one runs again and says why; a run
another process holds is left alone."""
import json
from hashlib import sha1

import pytest

from runs.layout import parse_run_dir
from tests.fake_workspace import out_dir
from tests.sweep_workspace import ws  # noqa: F401  (fixture)


def test_finished_runs_skipped_crashed_runs_rerun(ws):
    ws.finish("caltech101/AR/rn50_1shots/seed1")
    ws.write("out/caltech101/AR/rn50_1shots/seed2/log.txt", "killed mid-training\n")
    res = ws.run("ar.sh", "caltech101", "1", "rn50")
    assert res.returncode == 0, res.stderr
    assert ws.launched_dirs() == ["out/caltech101/AR/rn50_1shots/seed2",
                                  "out/caltech101/AR/rn50_1shots/seed3"]
    assert "[1/3] ar caltech101 1 shots seed 1 ... skip" in res.stdout
    assert "done 2 / failed 0 / skipped 1" in res.stdout


def test_failed_run_reported_and_others_continue(ws):
    res = ws.run("ar.sh", "dtd", "16", FAKE_FAIL="seed2")
    assert res.returncode == 1
    assert len(ws.launched()) == 3
    assert "done 2 / failed 1 / skipped 0" in res.stdout
    assert "failed run folders:\n  out/dtd/AR/vit_b16_16shots/seed2  (exit 3" in res.stdout


def test_exit_zero_without_results_json_is_a_failure(ws):
    res = ws.run("vp.sh", "dtd", "16", SEEDS="1", FAKE_NO_RESULTS="1")
    assert res.returncode == 1
    assert "no results.json" in res.stdout and "failed 1" in res.stdout


def test_run_locked_by_another_process_is_left_alone(ws):
    fcntl = pytest.importorskip("fcntl")
    folder = ws.root / "out/dtd/AR/vit_b16_16shots/seed1"
    folder.mkdir(parents=True)
    with open(folder / ".run.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = ws.run("ar.sh", "dtd", "16", SEEDS="1 2")
    assert res.returncode == 0, res.stderr
    assert "[1/2] ar dtd 16 shots seed 1 ... skip (busy)" in res.stdout
    assert "running in another process (not touched): 1" in res.stdout
    assert ws.launched_dirs() == ["out/dtd/AR/vit_b16_16shots/seed2"]


def test_corrupt_empty_or_foreign_results_are_rerun_and_said_why(ws):
    """Issue 10 defect 5: only a results.json that parses and matches the run counts as done."""
    base = "out/dtd/AR/vit_b16_16shots"
    ws.write("configs/trainers/AR/vit_b16.yaml", "OPTIM:\n  MAX_EPOCH: 10\n")
    ws.write(f"{base}/seed1/results.json", "")
    ws.write(f"{base}/seed2/results.json", '{"method": "AR", "accu')
    foreign = json.loads(ws.finish("dtd/VP/vit_b16_16shots/seed3").read_text())
    ws.write(f"{base}/seed3/results.json", json.dumps(foreign))  # another method's file
    ws.finish("dtd/AR/vit_b16_16shots/seed4", "OPTIM.MAX_EPOCH", "5")  # other options
    ws.finish("dtd/AR/vit_b16_16shots/seed5")  # the real thing
    res = ws.run("ar.sh", "dtd", "16", SEEDS="1 2 3 4 5")
    assert res.returncode == 0, res.stderr
    assert ws.launched_dirs() == [f"{base}/seed{s}" for s in (1, 2, 3, 4)]
    # a folder holding a results.json is rewritten only on request: the runner asks for it (train.py --overwrite)
    assert all("--overwrite" in r["argv"] for r in ws.launched())
    out = res.stdout
    assert "[1/5] ar dtd 16 shots seed 1 ... running (results.json is empty)" in out
    assert "[2/5] ar dtd 16 shots seed 2 ... running (results.json is corrupt (" in out
    assert ('[3/5] ar dtd 16 shots seed 3 ... running (results.json does not match this run: '
            'method "VP", expected "AR"; ') in out
    assert ("[4/5] ar dtd 16 shots seed 4 ... running (results.json does not match this run: "
            "OPTIM.MAX_EPOCH 5, config sets 10)") in out
    assert "[5/5] ar dtd 16 shots seed 5 ... skip (results.json matches)" in out
    assert "done 4 / failed 0 / skipped 1" in out
    # Now every run matches: nothing is launched again.
    ws.record.unlink()
    res = ws.run("ar.sh", "dtd", "16", SEEDS="1 2 3 4 5")
    assert ws.launched() == [] and "skipped 5" in res.stdout


def test_config_file_edited_after_a_run_makes_it_unfinished(ws):
    ws.finish("dtd/AR/vit_b16_16shots/seed1")
    ws.write("configs/trainers/AR/vit_b16.yaml", "OPTIM:\n  LR: 10.0\n")
    res = ws.run("sweep.sh", "--methods", "ar", "--datasets", "dtd", "--shots", "16", "--seeds", "1",
                 "--dry-run")
    assert res.returncode == 0
    assert ("[1/1] ar dtd 16 shots seed 1 ... would run (results.json does not match this run: "
            "OPTIM.LR not recorded (config sets 10.0))") in res.stdout


def test_a_run_on_other_data_is_not_done(ws, tmp_path):
    """Issue 19 item 3: a finished run is done only on the data it was computed on (DATA=/an/empty/folder
    used to print "skip (results.json matches)")."""
    ws.finish("caltech101/AR/vit_b16_16shots/seed1")
    same = ws.run("ar.sh", "caltech101", "16", SEEDS="1")
    assert "skip (results.json matches)" in same.stdout and ws.launched() == []
    empty = tmp_path / "empty"
    empty.mkdir()
    res = ws.run("ar.sh", "caltech101", "16", SEEDS="1", DATA=str(empty))
    assert "skip (results.json matches)" not in res.stdout
    assert f"running (results.json does not match this run: data not found: no dataset folder {empty}/caltech101)" \
        in res.stdout
    assert res.returncode == 1  # the run itself then fails with its clear error; the old result is kept
    assert json.loads((ws.root / "out/caltech101/AR/vit_b16_16shots/seed1/results.json").read_text())["accuracy"]
    ws.write("data/caltech101/split.json", '{"train": [["a.jpg", 0, "a"]], "val": [], "test": []}\n')
    res = ws.run("sweep.sh", "--methods", "ar", "--datasets", "caltech101", "--shots", "16", "--seeds", "1",
                 "--dry-run")
    assert f"would run (results.json does not match this run: split file {ws.root}/data/caltech101/split.json " \
           "changed since this run (sha256 differs))" in res.stdout


def test_runs_of_other_data_options_get_their_own_folders(ws):
    """Issue 19 item 6: two ImageFolders (or Digits shifts, or class subsets) shared output/imagefolder/AR/...:
    the second run overwrote the first one's result."""
    for name in ("pets", "cars"):
        ws.write(f"data/{name}/split.json", "{}\n")
    opts = [("DATASET.IMAGEFOLDER_DIR", "pets"), ("DATASET.IMAGEFOLDER_DIR", "cars"),
            ("DATASET.SUBSAMPLE_CLASSES", "base"), ("DATASET.IMAGEFOLDER_DIR", "/data/my pets")]
    for key, value in opts:
        assert ws.run("ar.sh", "caltech101", "4", key, value, SEEDS="1").returncode == 0
    folders = [out_dir(r["argv"]) for r in ws.launched()]
    assert folders == ["out/caltech101--imagefolder_dir-pets/AR/vit_b16_4shots/seed1",
                       "out/caltech101--imagefolder_dir-cars/AR/vit_b16_4shots/seed1",
                       "out/caltech101--subsample_classes-base/AR/vit_b16_4shots/seed1",
                       f"out/caltech101--imagefolder_dir-data_my_pets-{sha1(b'/data/my pets').hexdigest()[:8]}"
                       "/AR/vit_b16_4shots/seed1"]
    assert len(set(folders)) == 4 and all((ws.root / f / "results.json").exists() for f in folders)
    again = ws.run("ar.sh", "caltech101", "4", "DATASET.IMAGEFOLDER_DIR", "pets", SEEDS="1")
    assert "skip (results.json matches)" in again.stdout
    assert parse_run_dir(folders[0]).dataset == "caltech101"


def test_a_result_without_data_identity_is_not_done(ws):
    results = ws.finish("dtd/AR/vit_b16_16shots/seed1")
    data = json.loads(results.read_text())
    del data["data_identity"]
    results.write_text(json.dumps(data))
    res = ws.run("sweep.sh", "--methods", "ar", "--datasets", "dtd", "--shots", "16", "--seeds", "1", "--dry-run")
    assert "would run (results.json does not match this run: no data identity recorded" in res.stdout


def test_exit_zero_with_a_mismatching_results_json_is_a_failure(ws):
    fake = ws.fake.read_text().replace('"seed": int(flag("--seed"))', '"seed": 99')
    ws.fake.write_text(fake)
    res = ws.run("vp.sh", "dtd", "16", SEEDS="1")
    assert res.returncode == 1
    assert "exit 0 but results.json does not match this run: seed 99, expected 1" in res.stdout
