"""A VR method defined only in this file (the README's one-file recipe), with the config the test writes:
a new prompt shape (a learned square patch in the image's corner) and a label-mapping-style aggregation
(each class's argmax counts normalised, no smoothing), both registered by decorator. train.py trains and
evaluates it, sweep.sh runs it, make_table.py tabulates it, predict.py explains it, and the
registry-parametrised VR trainer tests cover it (tests/trainer_fixtures.py imports tests/test_*_plugin.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.extend import ensure_node, register_config
from runs import catalogue
from tests.plugin_squares_data import TINY_AR, make_squares
from trainers.base import VRTrainer
from trainers.label_mapping import source_table
from trainers.vr_keys import add_common_keys
from vr import AdditiveParts, VisualPrompt, aggregation_from_node, register_aggregation, register_prompt
from vr.mapping import LabelMapping, argmax_counts
from vr.prompts import stretched

REPO = Path(__file__).resolve().parents[1]
PLUGINS = "tests.test_datasets_plugin,tests.test_method_plugin"


# ---- the method: a prompt kind, an aggregation, a trainer --------------------------------------------------
@register_prompt
class CornerPatch(VisualPrompt):
    """A learned PATCH x PATCH square added to the top-left corner of the normalised image."""

    kind = "corner_patch"
    CONFIG_KEYS = ("PATCH",)
    ADDITIVE = True

    def __init__(self, image_size=224, patch=32, num_prompts=1, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__(image_size, mean, std, num_prompts)
        if not 0 < int(patch) <= self.image_size:
            raise ValueError(f"TRAINER.<NAME>.PATCH must lie in [1, {self.image_size}], got {patch}.")
        self.delta = nn.Parameter(torch.zeros(self.num_prompts, 3, int(patch), int(patch)))

    def num_trainable_entries(self):
        return self.delta.numel()

    def pattern(self):
        rest = self.image_size - self.delta.shape[-1]
        return F.pad(self.delta, (0, rest, 0, rest))

    def additive_parts(self, x01):
        self.check_input(x01)
        return AdditiveParts(x01, self.pattern())

    def forward(self, x01):
        self.check_input(x01)
        out = self.normalise(x01).unsqueeze(0) + self.pattern().unsqueeze(1).to(x01.dtype)
        return out.reshape(-1, 3, self.image_size, self.image_size)

    def pictures(self):
        return [[(stretched(p)[0], f"prompt {i} (corner patch)")] for i, p in enumerate(self.pattern().detach())]


@register_aggregation
class FrequencyMapping(LabelMapping):
    """omega[s, t] = the share of class t's samples whose top source text is s."""

    kind = "frequency"
    WEIGHT_KIND = "frequency weight"

    def statistic(self, z):
        return argmax_counts(z)

    def estimate(self, counts):
        return counts / counts.sum(dim=0, keepdim=True).clamp_min(1.0)


@register_config
def _corner_map_keys(cfg):
    node = ensure_node(cfg, "TRAINER.CORNERMAP")
    add_common_keys(node, prompt="corner_patch")
    node.PATCH = 48
    node.AGGREGATION = "frequency"


@TRAINER_REGISTRY.register()
class CornerMap(VRTrainer):
    """A corner patch scored against two templates x the class names, mapped by frequency."""

    NODE = "CORNERMAP"

    def build_text(self, classnames):
        return source_table(classnames, ["a photo of a {}.", "a {} square."])

    def build_aggregation(self, table):
        return aggregation_from_node(self.vcfg.AGGREGATION, table, self.vcfg, key="TRAINER.CORNERMAP.AGGREGATION")


# ---- the method through the whole chain --------------------------------------------------------------------
TINY = TINY_AR.replace("  AR:\n    TEMPLATES: \"coop\"\n", "  CORNERMAP:\n    PATCH: 64\n    PRECISION: \"fp32\"\n")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    (ws / "configs" / "datasets").mkdir(parents=True)
    (ws / "configs" / "datasets" / "plugin_squares.yaml").write_text('DATASET:\n  NAME: "PluginSquares"\n')
    (ws / "configs" / "trainers" / "CornerMap").mkdir(parents=True)
    (ws / "configs" / "trainers" / "CornerMap" / "tiny.yaml").write_text(TINY)
    monkeypatch.setenv("VR_PLUGINS", PLUGINS)
    monkeypatch.setenv("VR_TRAINER_CATALOGUE", str(ws / "plugin_trainers.json"))
    monkeypatch.setenv("VR_DATASET_CATALOGUE", str(ws / "plugin_datasets.json"))
    make_squares(tmp_path / "data")
    return ws


@pytest.mark.slow
def test_a_method_defined_in_a_test_file_trains_sweeps_tabulates_and_explains(workspace, tmp_path, capsys):
    import train

    ws, data = workspace, tmp_path / "data"
    methods = catalogue.write()
    from tests.script_helpers import load_script  # after the catalogue: the scripts read it on import
    assert "cornermap" in [m.script for m in methods]
    assert not (REPO / "scripts" / "cornermap.sh").exists()  # a plugin's catalogue writes no repo script

    # the sweep trains it through train.py (a subprocess, as a user would, from a folder with its configs)
    (ws / "train.py").symlink_to(REPO / "train.py")
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(data), OUTPUT="out", RUNNER_PYTHON=sys.executable,
               PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    res = subprocess.run(["/bin/bash", str(REPO / "scripts" / "sweep.sh"), "--methods", "cornermap", "--datasets",
                          "plugin_squares", "--shots", "2", "--seeds", "1", "--cfg", "tiny"], cwd=ws, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    run = ws / "out" / "plugin_squares" / "CornerMap" / "tiny_2shots" / "seed1"
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == "CornerMap" and results["vr"]["prompt"] == "corner_patch"
    assert results["trainable_params"] == 3 * 64 * 64
    texts = json.loads((run / "vr_texts.json").read_text())["texts"]
    assert len(texts) == 2 * 2 and {t["names_class"] for t in texts} == {"red", "blue"}  # the free layout

    # evaluation from the checkpoint reproduces the accuracy (in-process train.py --eval-only)
    argv = ["--root", str(data), "--seed", "1", "--trainer", "CornerMap", "--eval-only", "--model-dir", str(run),
            "--dataset-config-file", str(ws / "configs" / "datasets" / "plugin_squares.yaml"),
            "--config-file", str(ws / "configs" / "trainers" / "CornerMap" / "tiny.yaml"),
            "--output-dir", str(tmp_path / "eval"), "--load-epoch", "1", "DATASET.NUM_SHOTS", "2"]
    assert train.main(argv) == 0, capsys.readouterr().err
    again = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert again["accuracy"] == results["accuracy"]

    # the table has its row, under its trainer name
    make_table = load_script("make_table")
    capsys.readouterr()
    assert make_table.main([str(ws / "out")]) == 0
    table = capsys.readouterr().out
    assert any(line.split()[:1] == ["CornerMap"] for line in table.splitlines()), table

    # predict explains its class logit through the mapping weights
    predict = load_script("predict")
    image = next((data / "plugin_squares" / "images" / "red").iterdir())
    assert predict.main([str(run), str(image), "--json", "--root", str(data)]) == 0
    record = json.loads(capsys.readouterr().out)["predictions"][0]
    explanation = record["explanation"]
    assert explanation["weights"] == "frequency weight"
    assert sum(d["weight"] for d in explanation["descriptions"]) == pytest.approx(1.0)
    assert explanation["class_logit"] == pytest.approx(sum(d["score"] for d in explanation["descriptions"]),
                                                       abs=1e-4)


def test_the_corner_patch_is_additive_and_changes_only_its_corner():
    prompt = CornerPatch(224, patch=8)
    with torch.no_grad():
        prompt.delta.fill_(1.0)
    x = torch.rand(2, 3, 224, 224)
    out = prompt(x).view(2, 3, 224, 224)
    plain = prompt.normalise(x)
    assert torch.allclose(out[..., :8, :8], plain[..., :8, :8] + 1.0)
    assert torch.equal(out[..., 8:, :], plain[..., 8:, :]) and torch.equal(out[..., :, 8:], plain[..., :, 8:])
    parts = prompt.additive_parts(x)
    assert torch.allclose(prompt.normalise(parts.pixels)[None] + parts.pattern[:, None], out[None])


@pytest.mark.slow
def test_plot_prm_draws_a_prompt_kind_whose_parameter_is_not_image_sized(toy_root, tmp_path):
    from tests.script_helpers import load_script
    from tests.toy_runs import train_run

    train_run("CornerMap", toy_root, tmp_path / "run", "", epochs=1, opts=["TRAINER.CORNERMAP.PATCH", 16])
    plot_prm = load_script("plot_prm")
    written = plot_prm.plot_run(str(tmp_path / "run"), out=str(tmp_path / "plots"), log=lambda *a: None)
    assert [os.path.basename(p) for p in written] == ["prompt_0.png"]
    run = str(tmp_path / "run")
    state = plot_prm.load_state(plot_prm.find_checkpoints(run, None)[1]["vr_model"])
    [[(picture, caption)]] = plot_prm.prompt_images(state, plot_prm.read_config(run), run)
    assert picture.shape == (224, 224, 3) and caption == "prompt 0 (corner patch)"  # the image, not the patch
