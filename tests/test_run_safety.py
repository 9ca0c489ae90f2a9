"""A killed or failing run keeps its log, and errors a user can fix are one ERROR line (issue 10, 2 and 8)."""
import errno
import os
import sys

import pytest

import train
from tests.conftest import run_cmd
from tests.toy_runs import TOY


@pytest.mark.slow
def test_sigterm_keeps_the_log_of_finished_epochs(toy_root, tmp_path):
    out = tmp_path / "run"
    proc = run_cmd([sys.executable, "train.py", "--root", toy_root, "--output-dir", str(out)] + TOY,
                   VR_PLUGINS="tests.toy_plugin", TOY_KILL_AT_EPOCH="3", TOY_KILL_SIGNAL="SIGTERM",
                   PYTHONUNBUFFERED="0")
    assert proc.returncode == -15
    log = (out / "log.txt").read_text()
    assert "epoch [3/4]" in log and "epoch [4/4]" not in log  # every line printed before the kill
    assert "** Config **" in log


def test_a_user_error_is_one_line_in_the_log(toy_root, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "run"
    code = train.main(["--root", toy_root, "--output-dir", str(out)] + TOY + ["DATASET.NUM_SHOTS", "2",
                                                                           "DATASET.NAME", "NoSuchSet"])
    assert code == 1
    os.makedirs(out, exist_ok=True)  # the run folder exists: a later error reaches its log
    code = train.main(["--root", toy_root, "--output-dir", str(out), "--trainer", "ToyLinaer"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    log = (out / "log.txt").read_text()
    assert log.strip().splitlines()[-1].startswith('ERROR: Unknown trainer "ToyLinaer"')
    assert "Traceback" not in log


def test_an_error_during_the_run_reaches_its_log_with_config_output_dir(toy_root, tmp_path, capsys):
    """The output folder from a config option (not --output-dir) still gets the final error."""
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "cfg_out"
    code = train.main(["--root", toy_root] + TOY + ["OUTPUT_DIR", str(out), "OPTIM.NAME", "sgdd"])
    assert code == 1
    last = (out / "log.txt").read_text().strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and "sgdd" in last


def test_an_unexpected_error_keeps_its_traceback_in_the_log(toy_root, tmp_path, monkeypatch):
    import tests.toy_plugin  # noqa: F401

    def broken(cfg):
        raise RuntimeError("boom in build_trainer")

    monkeypatch.setattr(train, "build_trainer", broken)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        train.main(["--root", toy_root, "--output-dir", str(out)] + TOY)
    log = (out / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "RuntimeError: boom in build_trainer" in log


def test_full_disk_is_one_error_line_naming_the_file(toy_root, tmp_path, capsys, monkeypatch):
    import engine.io
    import tests.toy_plugin  # noqa: F401

    def no_space(fd, data):  # half the bytes fit, then the disk is full (the OS names no file)
        os.write(fd, data[:len(data) // 2])
        os.close(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(engine.io, "_write_file", no_space)
    out = tmp_path / "run"
    code = train.main(["--root", toy_root, "--output-dir", str(out)] + TOY)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(line) == 1 and "config.yaml" in line[0] and "the disk is full" in line[0]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]  # no half-written file left behind


def test_read_only_output_dir_is_one_error_line_before_any_work(toy_root, tmp_path, capsys, monkeypatch):
    """(Simulated: the tests may run as root, for whom chmod does not forbid writing.)"""
    import builtins

    from engine import run_logging

    real_open = builtins.open

    def read_only_open(path, mode="r", *args, **kwargs):
        if "log.txt" in str(path) and mode != "r":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(run_logging, "open", read_only_open, raising=False)
    code = train.main(["--root", toy_root, "--output-dir", str(tmp_path / "ro")] + TOY)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "ERROR: Cannot access" in err and "log.txt: permission denied" in err and "--output-dir" in err


def test_a_full_disk_under_the_log_names_the_log(tmp_path):
    from engine.errors import user_error_message
    from engine.run_logging import Tee

    class FullFile:
        closed = False

        def write(self, msg=""):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        flush = write

    tee = Tee(open(os.devnull, "w"), str(tmp_path / "log.txt"))  # noqa: SIM115  (closed below)
    tee.file.close()
    tee.file = FullFile()
    for action in (lambda: tee.write("epoch 1\n"), tee.flush):
        with pytest.raises(OSError) as err:
            action()
        assert user_error_message(err.value).startswith(f"Cannot write {tmp_path / 'log.txt'}: the disk is full")


def test_a_refused_command_leaves_a_finished_runs_log_ending_with_its_results(toy_root, tmp_path, capsys):
    """Rerunning a finished run's folder with another config is refused before it starts; the folder's
    log.txt must still end with the run's result lines (the README promises it), not with that refusal."""
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "run"
    base = ["--root", toy_root, "--output-dir", str(out)] + TOY + ["DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1"]
    assert train.main(base) == 0
    before = (out / "log.txt").read_text()
    assert train.main(base + ["OPTIM.LR", "0.25"]) == 1
    assert "ERROR:" in capsys.readouterr().err
    assert (out / "log.txt").read_text() == before
