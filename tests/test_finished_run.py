"""A finished run's folder changes only through an explicit --overwrite, and never before its inputs are found
(issue 19, item 5)."""
import os

import train
from tests.toy_runs import TOY


def _files(out):
    return {name: (out / name).read_bytes() for name in ("config.yaml", "results.json", "log.txt")}


def test_a_finished_run_is_never_rewritten_without_overwrite(toy_root, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "run"
    opts = TOY + ["DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1"]
    assert train.main(["--root", toy_root, "--output-dir", str(out)] + opts) == 0
    before = _files(out)
    broken = tmp_path / "elsewhere"
    os.makedirs(broken / "toy_colors")  # the dataset folder without its split file: the data is not there
    capsys.readouterr()

    assert train.main(["--root", str(broken), "--output-dir", str(out)] + opts) == 1
    err = capsys.readouterr().err
    assert "holds a finished run" in err and "--overwrite" in err and "--eval-only --model-dir" in err
    assert _files(out) == before  # config.yaml keeps its DATASET.ROOT; the log still ends with the results

    # asked to redo, but the data is missing: refused before config.yaml or results.json change
    assert train.main(["--root", str(broken), "--output-dir", str(out), "--overwrite"] + opts) == 1
    assert "split_toy.json" in capsys.readouterr().err
    now = _files(out)
    assert (now["config.yaml"], now["results.json"]) == (before["config.yaml"], before["results.json"])

    # another valid root: still refused without --overwrite; with it, the run is evaluated again
    other = tmp_path / "copy"
    other.mkdir()  # ToyColors writes its images there
    assert train.main(["--root", str(other), "--output-dir", str(out)] + opts) == 1
    assert "holds a finished run" in capsys.readouterr().err
    assert _files(out)["results.json"] == before["results.json"]
    assert train.main(["--root", str(other), "--output-dir", str(out), "--overwrite"] + opts) == 0
    assert str(other) in (out / "config.yaml").read_text()


def test_an_eval_only_run_into_a_finished_folder_is_told_to_use_a_new_folder(toy_root, tmp_path, capsys):
    import tests.toy_plugin  # noqa: F401

    out = tmp_path / "run"
    opts = TOY + ["DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1"]
    assert train.main(["--root", toy_root, "--output-dir", str(out)] + opts) == 0
    results = (out / "results.json").read_bytes()
    evaluate = ["--eval-only", "--model-dir", str(out), "--load-epoch", "1"]
    code = train.main(["--root", toy_root, "--output-dir", str(out)] + evaluate + opts)
    assert code == 1 and "pass another --output-dir" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == results
    assert train.main(["--root", toy_root, "--output-dir", str(tmp_path / "eval"), "--eval-only",
                       "--model-dir", str(out), "--load-epoch", "1"] + opts) == 0
