"""runs/: the run layout and "done" rule, the yaml reader the runner uses, the trainer catalogue,
and the help texts of the run commands."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runs import catalogue, layout

REPO = Path(__file__).resolve().parents[1]


def test_runner_reads_configs_with_pyyaml_and_names_an_unreadable_one(tmp_path, monkeypatch):
    """The runner's done check reads the configs as train.py's config library does (yaml.safe_load: YAML
    1.1: ``on`` a bool), and the sweep refuses a config it cannot read before it starts."""
    from runs import jobs

    (tmp_path / "configs" / "datasets").mkdir(parents=True)
    (tmp_path / "configs" / "trainers" / "VP").mkdir(parents=True)
    (tmp_path / "configs" / "datasets" / "toy.yaml").write_text("DATASET:\n  NAME: Toy\n")
    bad = tmp_path / "configs" / "trainers" / "VP" / "x.yaml"
    bad.write_text("OPTIM:\n  LR: 1e-3\n  MOMENTUM: 0.9\nUSE_CUDA: on\nMODEL: {A: [1, 'b']}\n")
    monkeypatch.chdir(tmp_path)
    assert layout.expected_config([str(bad)]) == {"OPTIM.LR": 0.001, "OPTIM.MOMENTUM": 0.9, "USE_CUDA": True,
                                                  "MODEL.A": [1, "b"]}
    jobs.validate([jobs.Job("vp", "toy", 1, "x", 1)])
    bad.write_text("OPTIM:\n  LR: [1\n")
    with pytest.raises(jobs.UsageError, match=r"cannot read configs/trainers/VP/x.yaml"):
        jobs.validate([jobs.Job("vp", "toy", 1, "x", 1)])


def test_run_dir_round_trip():
    path = layout.run_dir("output", "digits_tinted", "DVP_CLS", "vit_b16_ep50", 16, 3)
    assert path == "output/digits_tinted/DVP_CLS/vit_b16_ep50_16shots/seed3"
    assert layout.parse_run_dir(path + "/results.json") == ("digits_tinted", "DVP_CLS", "vit_b16_ep50", 16, 3)
    assert layout.parse_run_dir("output/digits/AR/x/seed1") is None


def test_check_done_names_what_differs(tmp_path):
    ds = tmp_path / "ds.yaml"
    ds.write_text('DATASET:\n  NAME: "Digits"\n  DIGITS_SHIFT: "tinted"\n')
    tr = tmp_path / "tr.yaml"
    tr.write_text("OPTIM:\n  LR: 10.0\nMODEL:\n  BACKBONE:\n    NAME: digits-tiny\n")
    run = tmp_path / "run"
    run.mkdir()
    config = {"DATASET": {"NAME": "Digits", "DIGITS_SHIFT": "tinted", "NUM_SHOTS": 16, "ROOT": "/elsewhere"},
              "OPTIM": {"LR": 10.0}, "MODEL": {"BACKBONE": {"NAME": "digits-tiny"}}, "SEED": 1}
    results = {"method": "AR", "shots": 16, "seed": 1, "accuracy": 51.0, "config": config,
               "data_identity": {"split_sha256": "x"}}
    (run / "results.json").write_text(json.dumps(results))
    args = ("AR", 16, 1, [ds, tr], ["DATASET.NUM_SHOTS", "16"])
    assert layout.check_done(run, *args) == (True, "results.json matches")
    config["DATASET"]["DIGITS_SHIFT"] = "inverted"  # e.g. a run of digits_inverted copied here
    (run / "results.json").write_text(json.dumps(results))
    assert layout.check_done(run, *args) == (
        False, 'results.json does not match this run: DATASET.DIGITS_SHIFT "inverted", config sets "tinted"')
    assert layout.check_done(run, "AR", 16, 1, [ds, tr], ["DATASET.NUM_SHOTS", "16", "OPTIM.LR", "1.0"]).reason \
        .endswith("OPTIM.LR 10.0, config sets 1.0")
    (run / "results.json").write_text("[1, 2]")
    assert layout.check_done(run, *args) == (False, "results.json is not a JSON object")


def test_check_done_refuses_an_untrained_result(tmp_path):
    """Old code: an --eval-only run without --model-dir ("untrained": true) counted as the trained run."""
    run = tmp_path / "run"
    run.mkdir()
    config = {"DATASET": {"NAME": "Digits", "NUM_SHOTS": 16}}
    results = {"method": "AR", "shots": 16, "seed": 1, "accuracy": 9.0, "config": config, "untrained": True,
               "data_identity": {"split_sha256": "x"}}
    (run / "results.json").write_text(json.dumps(results))
    verdict = layout.check_done(run, "AR", 16, 1, [], ["DATASET.NUM_SHOTS", "16"])
    assert verdict == (False, 'results.json does not match this run: "untrained": true (--eval-only without '
                              '--model-dir evaluated the initial parameters)')
    del results["untrained"]
    (run / "results.json").write_text(json.dumps(results))
    assert layout.check_done(run, "AR", 16, 1, [], ["DATASET.NUM_SHOTS", "16"]).done


@pytest.mark.slow
def test_catalogue_and_method_scripts_are_current():
    """runs/trainers.json, runs/datasets.json and scripts/<name>.sh come from the registries: rerun
    `python -m runs.catalogue`."""
    # a fresh process: this one may hold trainers other tests registered (tests/toy_plugin.py)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VR_PLUGINS", "VR_TRAINER_CATALOGUE", "VR_DATASET_CATALOGUE")}
    fresh = subprocess.run([sys.executable, "-c", "from runs import catalogue; "
                            "print(catalogue.render(catalogue.from_registry()), end='\\0'); "
                            "print(catalogue.render_datasets(catalogue.datasets_from_registry()), end='')"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    fresh_trainers, fresh_datasets = fresh.split("\0")
    assert (REPO / "runs" / "trainers.json").read_text() == fresh_trainers, \
        "runs/trainers.json is stale: run python -m runs.catalogue"
    assert (REPO / "runs" / "datasets.json").read_text() == fresh_datasets, \
        "runs/datasets.json is stale: run python -m runs.catalogue"
    methods = catalogue.load(str(REPO / "runs" / "trainers.json")).values()
    for method in methods:
        script = REPO / "scripts" / f"{method.script}.sh"
        assert script.read_text() == catalogue.script_text(method), f"{script} is stale: run python -m runs.catalogue"
    assert {m.script: m.trains for m in methods}["zsclip"] is False
    assert not any(m.script == "toylinear" for m in methods)


PATH_LIKE = re.compile(r"(?<![\w<$/.-])((?:configs|scripts|datasets|descriptions|runs|engine|trainers|vr|backbones|"
                       r"benchmarks|docs|tests)/[\w./-]*[\w]|[\w-]+\.md)\b")


def help_texts():
    env_cmds = {
        "sweep.sh": ["/bin/bash", "scripts/sweep.sh", "--help"],
        "method.sh": ["/bin/bash", "scripts/method.sh", "ar", "--help"],
        "make_table": [sys.executable, "scripts/make_table.py", "--help"],
        "datasets.check": [sys.executable, "-m", "datasets.check", "--help"],
        "run_one": [sys.executable, "scripts/run_one.py"],
    }
    for name, cmd in env_cmds.items():
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        yield name, res.stdout + res.stderr
    for script in sorted((REPO / "scripts").glob("*.sh")):
        yield script.name, "".join(line for line in script.read_text().splitlines(True) if line.startswith("#"))


@pytest.mark.slow
def test_help_texts_name_files_that_exist():
    missing = []
    for name, text in help_texts():
        assert text.strip(), name
        for ref in PATH_LIKE.findall(text):
            ref = ref.rstrip(".")
            if "<" not in ref and not (REPO / ref).exists():
                missing.append(f"{name}: {ref}")
    assert missing == []


@pytest.mark.slow
def test_every_shipped_config_matches_what_train_py_records(tmp_path):
    """The done rule compares the yaml values with the recorded config: for every trainer config (and
    every dataset config), train.py's merged config must hold exactly those values, or every sweep
    would rerun finished runs forever."""
    import train
    from engine.results import cfg_to_dict
    from runs.jobs import Job, config_files, train_opts

    jobs = [Job(m.script, "dtd", 1, cfg, 1, ("OPTIM.MAX_EPOCH", "3"))
            for m in catalogue.load().values()
            for cfg in sorted(p.stem for p in (REPO / "configs" / "trainers" / m.trainer).glob("*.yaml"))]
    jobs += [Job("ar", ds.stem, 16, "vit_b16", 2) for ds in sorted((REPO / "configs" / "datasets").glob("*.yaml"))]
    for job in jobs:
        files = [str(REPO / p) for p in config_files(job)]
        argv = ["--root", str(tmp_path), "--seed", str(job.seed), "--trainer", catalogue.load()[job.method].trainer,
                "--dataset-config-file", files[0], "--config-file", files[1], "--output-dir", str(tmp_path / "run"),
                *train_opts(job)]
        cfg = train.setup_cfg(train.build_parser().parse_args(argv))
        run = tmp_path / "run"
        run.mkdir(exist_ok=True)
        (run / "results.json").write_text(json.dumps({
            "method": cfg.TRAINER.NAME, "shots": int(cfg.DATASET.NUM_SHOTS), "seed": int(cfg.SEED),
            "accuracy": 1.0, "config": cfg_to_dict(cfg), "data_identity": {"split_sha256": "x"}}))
        verdict = layout.check_done(run, cfg.TRAINER.NAME, job.shots, job.seed, files, train_opts(job))
        assert verdict.done, (job, verdict.reason)


def test_catalogue_says_which_methods_score_unseen_classes(tmp_path):
    """From each trainer's CLASS_TRANSFER (empty: per-class heads and caches); base2new.sh reads it."""
    methods = {m.trainer: m for m in catalogue.load(str(REPO / "runs" / "trainers.json")).values()}
    cannot = {name for name, m in methods.items() if not m.scores_unseen_classes}
    assert {"TipAdapter", "TipAdapterF", "LinearProbe", "LPPlusPlus"} <= cannot
    assert not cannot & {"CoOp", "CoCoOp", "KgCoOp", "CLIPAdapter", "VP", "AR", "DVP_CLS", "ZeroshotCLIP"}
    assert methods["TipAdapter"].unseen_classes.startswith("the cache's values are one-hot labels")
    assert methods["CoOp"].unseen_classes.startswith("learned context kept")
    old = tmp_path / "old.json"  # a plugin catalogue written before the fields existed still reads
    old.write_text(json.dumps([{"script": "mine", "trainer": "Mine", "trains": True, "summary": "s"}]))
    assert catalogue.load(str(old))["mine"].scores_unseen_classes is True
