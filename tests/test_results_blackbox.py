"""Tables of black-box runs: a Queries column (training image queries per run, mean over the row's runs) and
a run a query budget stopped is never averaged with complete runs."""
import csv
import json

from tests.result_files import write_recorded_run as write
from tests.script_helpers import table


def black_box(folder, queries, stopped_after=None):
    path = folder / "results.json"
    data = json.loads(path.read_text())
    data["black_box"] = {"train_image_queries": queries, "stopped_by_budget": stopped_after is not None,
                         "budget_stop": None if stopped_after is None else {"epochs_done": stopped_after}}
    path.write_text(json.dumps(data))


def test_the_table_shows_the_queries_of_black_box_rows(tmp_path, capsys):
    root = tmp_path / "output"
    for seed in (1, 2):
        write(root, "dtd", "AR", seed, 50.0 + seed)
        black_box(write(root, "dtd", "BAR", seed, 40.0 + seed), 1000 * seed)
    rc, out, err = table(capsys, root, "--format", "csv")
    assert rc == 0, err
    lines = list(csv.reader(line for line in out.splitlines() if line and not line.startswith("#")))
    assert lines[0][-2:] == ["Avg", "Queries"]
    rows = {line[2]: line for line in lines[1:]}
    assert rows["BAR"][-1] == "1,500" and rows["AR"][-1] == "-"
    rc, out, _ = table(capsys, root)
    assert "Queries" in out and "1,500" in out


def test_a_budget_stopped_run_is_not_averaged_with_complete_runs(tmp_path, capsys):
    root = tmp_path / "output"
    black_box(write(root, "dtd", "BAR", 1, 41.0), 1000)
    black_box(write(root, "dtd", "BAR", 2, 30.0), 400, stopped_after=2)
    rc, out, err = table(capsys, root)
    assert rc == 1 and "black_box.stopped_by_budget_after_epoch" in err
