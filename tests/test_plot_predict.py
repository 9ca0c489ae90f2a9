"""scripts/plot_prm.py and scripts/predict.py on a tiny DVP_CLS run (ToyColors, test-tiny), trained once.

plot_prm writes valid PNGs (and the markdown table) that agree with prm.pt; predict's probabilities are
sorted and its top-1 is the trained model's own prediction; user mistakes give one clear error.
"""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import run_cmd
from tests.script_helpers import load_script
from tests.toy_runs import train_run
from tests.trainer_fixtures import toy_descriptions  # noqa: F401  (session fixture)
from vr import PaddingPrompt

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
PRM_PNGS = ["prm_heatmap.png", "prompt_contributions.png", "top_descriptions.png"]


plot_prm = load_script("plot_prm")
predict = load_script("predict")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # test-tiny: one intra-op thread is faster


@pytest.fixture(scope="module")
def dvp_run(toy_root, toy_descriptions, tmp_path_factory):
    """(run folder, trainer) of a 2-epoch DVP_CLS run (epoch 1 collects PRM statistics, epoch 2 trains)."""
    out = tmp_path_factory.mktemp("dvp_cls_run")
    trainer = train_run("DVP_CLS", toy_root, out, toy_descriptions, epochs=2)
    return str(out), trainer


@pytest.fixture(scope="module")
def test_images(dvp_run):
    """Test images of the run's dataset, one or two per class."""
    items = dvp_run[1].dm.dataset.test
    return [item.impath for item in items[::2]]


def error_of(capsys, rc):
    """The single ERROR line a script printed on failure."""
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("ERROR: ") and "\n" not in err and "Traceback" not in err, err
    return err


def is_png(path):
    data = Path(path).read_bytes()
    return len(data) > 100 and data.startswith(PNG)


# ---- plot_prm ----------------------------------------------------------------------------------------
def test_plot_prm_writes_the_pngs_and_a_table_that_agrees_with_prm_pt(dvp_run, capsys):
    run_dir, trainer = dvp_run
    assert plot_prm.main([run_dir]) == 0
    plots = Path(run_dir) / "plots"
    v = trainer.model.prompts.num_prompts
    for name in PRM_PNGS + [f"prompt_{i}.png" for i in range(v)]:
        assert is_png(plots / name), name
    assert not (plots / f"prompt_{v}.png").exists()
    out = capsys.readouterr().out
    assert f"Checkpoint of epoch 2; wrote {len(PRM_PNGS) + 1 + v} file(s)" in out

    saved = torch.load(Path(run_dir) / "prm.pt", weights_only=True)
    md = (plots / "top_descriptions.md").read_text()
    for ci, name in enumerate(saved["classnames"]):
        section = md.split(f"## {name}\n")[1].split("\n## ")[0]
        first = [line for line in section.splitlines() if line.startswith("| 1 |")][0]
        weight = float(first.split("|")[2])
        assert weight == pytest.approx(float(saved["omega_blocks"][ci].max()), abs=1e-4)
        rows = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
        assert len(rows) == int((saved["omega_blocks"][ci] > 0).sum().clamp(max=5))  # weight-0 rows left out


def test_plot_prm_reads_the_prm_of_an_earlier_checkpoint(dvp_run, tmp_path):
    run_dir, _ = dvp_run
    cfg = plot_prm.read_config(run_dir)
    state = plot_prm.load_state(os.path.join(run_dir, "vr_model", "model.pth.tar-1"))
    early = plot_prm.read_prm(run_dir, cfg, state)
    final = plot_prm.read_prm(run_dir, cfg)
    assert torch.equal(early["weight"], state["aggregation.weight"].float())
    assert torch.equal(final["weight"], torch.load(Path(run_dir) / "prm.pt", weights_only=True)["omega_blocks"])
    assert torch.allclose(early["contributions"].sum(1), torch.ones(4))
    assert plot_prm.main([run_dir, "--load-epoch", "1", "--out", str(tmp_path), "--classes", "blue", "red"]) == 0
    assert all(is_png(tmp_path / name) for name in PRM_PNGS)
    md = (tmp_path / "top_descriptions.md").read_text()
    assert "checkpoint of epoch 1" in md and "## blue" in md and "## green" not in md


def test_plot_prm_errors_are_one_clear_message(dvp_run, tmp_path, capsys):
    run_dir, _ = dvp_run
    err = error_of(capsys, plot_prm.main([str(tmp_path / "nope")]))
    assert "does not exist" in err and "OUTPUT_DIR" in err

    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(run_dir, no_ckpt, ignore=shutil.ignore_patterns("vr_model", "plots"))
    assert "holds no checkpoint" in error_of(capsys, plot_prm.main([str(no_ckpt)]))

    no_prm = tmp_path / "no_prm"
    shutil.copytree(run_dir, no_prm, ignore=shutil.ignore_patterns("prm.pt", "plots"))
    err = error_of(capsys, plot_prm.main([str(no_prm)]))
    assert "prm.pt is missing" in err and "did not finish" in err
    assert not (no_prm / "plots").exists()

    err = error_of(capsys, plot_prm.main([run_dir, "--out", str(tmp_path / "p"), "--classes", "rde"]))
    assert '"rde" (did you mean "red"?)' in err
    assert "saved epochs: 1, 2" in error_of(capsys, plot_prm.main([run_dir, "--load-epoch", "9"]))


def test_plot_prm_on_a_run_without_prm_draws_only_the_prompt(toy_root, toy_descriptions, tmp_path, capsys):
    run_dir = tmp_path / "ar"
    trainer = train_run("AR", toy_root, run_dir, toy_descriptions, epochs=1)
    capsys.readouterr()
    assert plot_prm.main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "this AR run has no PRM" in out and "the visual prompts are plotted" in out
    assert sorted(os.listdir(run_dir / "plots")) == ["prompt_0.png"]
    # the left panel is exactly what the padding prompt adds on the frame: sigmoid(delta)
    delta = trainer.model.prompts.delta.detach()[0]
    panels = plot_prm.prompt_images({"prompts.delta": delta[None]}, plot_prm.read_config(str(run_dir)), str(run_dir))[0]
    frame = panels[0][0][:8, :8]  # top-left corner lies on the frame
    assert torch.allclose(torch.from_numpy(frame), torch.sigmoid(delta).permute(1, 2, 0)[:8, :8], atol=1e-6)
    inner = panels[0][0][112, 112]
    assert inner.tolist() == pytest.approx([PaddingPrompt.IMAGE_AREA_GREY] * 3)


# ---- predict -----------------------------------------------------------------------------------------
def direct_logits(trainer, paths):
    """The trained model's class logits, computed here with the run's test transform."""
    from trainers.pipeline import vr_transforms

    tfm = vr_transforms(trainer.model.prompts.loader_size)[1]
    batch = torch.stack([tfm(Image.open(p).convert("RGB")) for p in paths]).to(trainer.device)
    trainer.model.eval()
    with torch.no_grad():
        return trainer.model(batch)


def test_predict_prints_sorted_probabilities_and_the_models_top1(dvp_run, test_images, capsys):
    run_dir, trainer = dvp_run
    assert predict.main([run_dir, *test_images, "--topk", "3", "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trainer"] == "DVP_CLS" and result["epoch"] == 2
    logits = direct_logits(trainer, test_images)
    classnames = trainer.dm.dataset.classnames
    assert [p["image"] for p in result["predictions"]] == test_images
    for rec, row in zip(result["predictions"], logits, strict=False):
        probs = [t["probability"] for t in rec["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert rec["top"][0]["class"] == classnames[int(row.argmax())]
        assert probs[0] == pytest.approx(float(torch.softmax(row, 0).max()), abs=1e-5)
        ex = rec["explanation"]
        assert ex["class"] == rec["top"][0]["class"]
        assert ex["class_logit"] == pytest.approx(float(row.max()), abs=1e-4)
        assert sum(p["mass"] for p in ex["prompts"]) == pytest.approx(1.0, abs=1e-5)
        assert sum(p["logit_part"] for p in ex["prompts"]) == pytest.approx(ex["class_logit"], abs=1e-4)
        scores = [d["score"] for d in ex["descriptions"]]
        assert scores == sorted(scores, reverse=True) and all(d["weight"] > 0 for d in ex["descriptions"])


def test_predict_text_output_and_earlier_epoch(dvp_run, test_images, capsys):
    run_dir, trainer = dvp_run
    assert predict.main([run_dir, test_images[0], "--load-epoch", "1", "--topk", "10"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint of epoch 1" in out
    ranks = [line for line in out.splitlines() if re.fullmatch(r"\s+\d+\. \S.*\s[\d.]+%", line)]
    assert len(ranks) == 4  # --topk above the number of classes shows every class
    probs = [float(line.rsplit(None, 1)[1].rstrip("%")) for line in ranks]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 100.0 + 0.05
    assert 'Prompts behind "' in out and "<- weighed most" in out and "Top descriptions of" in out


def test_predict_errors_are_one_clear_message(dvp_run, test_images, tmp_path, capsys):
    run_dir, _ = dvp_run
    err = error_of(capsys, predict.main([run_dir, str(tmp_path / "missing.jpg")]))
    assert "missing.jpg does not exist" in err
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    assert "cannot be read as an image" in error_of(capsys, predict.main([run_dir, str(bad)]))
    assert "is a folder" in error_of(capsys, predict.main([run_dir, str(tmp_path)]))
    assert "does not exist" in error_of(capsys, predict.main([str(tmp_path / "nope"), test_images[0]]))
    assert "saved epochs: 1, 2" in error_of(capsys, predict.main([run_dir, test_images[0], "--load-epoch", "5"]))
    err = error_of(capsys, predict.main([run_dir, test_images[0], "--root", str(tmp_path / "moved")]))
    assert "given with --root does not exist" in err


def test_one_bad_image_is_one_error_line_and_the_others_are_predicted(dvp_run, test_images, tmp_path, capsys):
    """Issue 19: a truncated JPEG or a float TIFF aborted the whole batch with a traceback."""
    import numpy as np
    from PIL import Image

    run_dir, _ = dvp_run
    good = tmp_path / "good.jpg"
    Image.open(test_images[0]).convert("RGB").save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    float_tiff = tmp_path / "float.tif"
    Image.fromarray(np.random.rand(16, 16).astype(np.float32), mode="F").save(float_tiff)
    images = [str(truncated), test_images[0], str(float_tiff), test_images[1]]
    assert predict.main([run_dir, *images, "--json", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("ERROR: ") for line in errors) and "Traceback" not in err
    assert str(truncated) in errors[0] and str(float_tiff) in errors[1] and "floating-point" in errors[1]
    records = json.loads(out)["predictions"]
    assert [r["image"] for r in records] == images
    assert ["error" in r for r in records] == [True, False, True, False]
    assert all(r["top"] and r["top"][0]["probability"] > 0 for r in records[1::2])


def test_plugins_are_imported_from_vr_plugins(dvp_run, test_images, monkeypatch, capsys):
    run_dir, _ = dvp_run
    monkeypatch.setenv("VR_PLUGINS", "tests.toy_plugin")
    assert predict.main([run_dir, test_images[0], "--topk", "1"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("VR_PLUGINS", "tests.no_such_plugin")
    err = error_of(capsys, predict.main([run_dir, test_images[0]]))
    assert "VR_PLUGINS names the module 'tests.no_such_plugin', which cannot be imported" in err


@pytest.mark.slow
def test_predict_runs_from_the_command_line(dvp_run, tmp_path):
    """As users run it, from the repository root (a quick failure: the sys.path bootstrap and the error path;
    plot_prm.py bootstraps the same way)."""
    run_dir, _ = dvp_run
    proc = run_cmd([sys.executable, "scripts/predict.py", run_dir, str(tmp_path / "missing.png")], timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("ERROR: ") and "missing.png does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- predict on Tip-Adapter runs: the cache neighbours -------------------------------------------------
@pytest.fixture(scope="module")
def tip_runs(toy_root, tmp_path_factory):
    """{trainer: run folder} of a TipAdapter and a TipAdapterF run on ToyColors (test-tiny, 2 shots: 8 keys)."""
    from tests.toy_runs import feature_run as run

    folders = {}
    for name in ("TipAdapter", "TipAdapterF"):
        folders[name] = str(tmp_path_factory.mktemp(name.lower()))
        run(name, toy_root, folders[name])
    return folders


def checkpoint_path(run_dir):
    return max(Path(run_dir, "head").glob("model.pth.tar-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))


@pytest.mark.parametrize("name", ["TipAdapter", "TipAdapterF"])
def test_predict_lists_the_cache_neighbours_of_highest_affinity(tip_runs, name, capsys):
    from trainers.features import encode_images
    from trainers.run_loading import load_run

    run_dir = tip_runs[name]
    loaded = load_run(run_dir, device="cpu")
    test = loaded.trainer.dm.dataset.test
    images = [item.impath for item in test[::3]]
    assert predict.main([run_dir, *images, "--json", "--neighbours", "3", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)

    # by hand, from the checkpoint's tensors: affinity f.F_n, weight exp(-beta (1 - a)), part alpha w L[n, c]
    state = torch.load(checkpoint_path(run_dir), map_location="cpu", weights_only=False)
    keys, values = state["state_dict"]["keys"].double(), state["state_dict"]["values"].double()
    alpha, beta = float(state["state_dict"]["alpha"]), float(state["state_dict"]["beta"])
    train_x = loaded.trainer.dm.dataset.train_x
    assert keys.shape[0] == len(train_x) == 8
    with torch.no_grad():
        feats = torch.nn.functional.normalize(encode_images(loaded.model.encoder, loaded.images_to_batch(images))
                                              .double(), dim=-1)
    affinity = feats @ keys.t()
    class_logits = loaded.class_logits(loaded.images_to_batch(images))
    for rec, a, logits in zip(result["predictions"], affinity, class_logits, strict=False):
        ex = rec["explanation"]
        predicted = rec["top"][0]["label"]
        assert ex["kind"] == "cache_neighbours" and ex["label"] == predicted and ex["images_known"] is True
        assert [n["index"] for n in ex["neighbours"]] == sorted(range(8), key=lambda n: -float(a[n]))[:3]
        assert ex["neighbours"][0]["index"] == int(a.argmax())
        for n in ex["neighbours"]:
            i = n["index"]
            assert n["image"] == train_x[i].impath and n["label"] == train_x[i].label
            assert n["class"] == loaded.classnames[train_x[i].label]
            assert n["affinity"] == pytest.approx(float(a[i]), abs=1e-5)
            part = alpha * float(torch.exp(-beta * (1 - a[i]))) * float(values[i, predicted])
            assert n["contribution"] == pytest.approx(part, rel=1e-4, abs=1e-6)
            assert (n["contribution"] == 0) == (n["label"] != predicted)
        cache = alpha * float((torch.exp(-beta * (1 - a)) * values[:, predicted]).sum())
        assert ex["cache_logit"] == pytest.approx(cache, rel=1e-4)
        assert ex["class_logit"] == pytest.approx(float(logits[predicted]), rel=1e-4)
        assert ex["alpha"] == alpha and ex["beta"] == beta

    assert predict.main([run_dir, images[0], "--neighbours", "2"]) == 0
    out = capsys.readouterr().out
    assert 'Cache behind "' in out and "nearest training images:" in out
    assert out.count("affinity ") == 2 and train_x[int(affinity[0].argmax())].impath in out


def test_a_tip_checkpoint_without_cache_images_still_explains_by_index(tip_runs, tmp_path, capsys):
    """A checkpoint from before the cache's images were stored loads; the explanation says they are unknown."""
    run_dir = tmp_path / "old_run"
    shutil.copytree(tip_runs["TipAdapter"], run_dir)
    path = checkpoint_path(run_dir)
    state = torch.load(path, map_location="cpu", weights_only=False)
    assert len(state["run"].pop("cache_images")) == 8
    torch.save(state, path)
    from trainers.run_loading import load_run

    image = load_run(str(run_dir), device="cpu").trainer.dm.dataset.test[0].impath
    assert predict.main([str(run_dir), image, "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)["predictions"][0]["explanation"]
    assert ex["images_known"] is False and "does not record the cache's training images" in ex["note"]
    assert all(n["image"] is None for n in ex["neighbours"]) and len(ex["neighbours"]) == 5
    assert predict.main([str(run_dir), image]) == 0
    out = capsys.readouterr().out
    assert "cache entry" in out and "(image unknown)" in out and "Note: the checkpoint does not record" in out
