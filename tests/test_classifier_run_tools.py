"""The run tools on a classifier-backbone run: a BLM run on a tiny timm classifier (random weights saved as a
state dict) and generated Fashion-MNIST IDX files; make_table.py, predict.py and plot_prm.py read it and
name the classifier's source classes (ImageNet names), not CLIP descriptions."""
import json

import pytest
import torch

from tests.dataset_helpers import write_idx
from tests.script_helpers import load_script

pytestmark = pytest.mark.slow  # one short training run (about 10 s on a free core)


@pytest.fixture(scope="module")
def blm_run(tmp_path_factory):
    import timm

    import train

    tmp = tmp_path_factory.mktemp("classifier_run")
    write_idx(tmp / "data" / "fashion_mnist" / "raw", n_train=50, n_test=20)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(timm.create_model("test_efficientnet", pretrained=False, num_classes=1000).state_dict(),
                   tmp / "tiny.pth")
    out = tmp / "out" / "fashion_mnist" / "BLM" / "seed1"
    rc = train.main(["--root", str(tmp / "data"), "--seed", "1", "--trainer", "BLM", "--output-dir", str(out),
                     "--dataset-config-file", "configs/datasets/fashion_mnist.yaml",
                     "--config-file", "configs/trainers/BLM/effnet_lite0.yaml",
                     "MODEL.BACKBONE.NAME", "timm:test_efficientnet", "MODEL.BACKBONE.WEIGHTS", str(tmp / "tiny.pth"),
                     "TRAINER.BLM.INPUT_SIZE", "64", "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1"])
    assert rc == 0
    image = next((tmp / "data" / "fashion_mnist" / "images").glob("0_*/test-*.png"))
    return tmp, out, image


def test_predict_names_the_source_classes_behind_the_predicted_class(blm_run, capsys):
    from backbones.classifiers import imagenet_classnames
    predict = load_script("predict")
    _, run, image = blm_run
    assert predict.main([str(run), str(image), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "= sum over source classes of" in out and "Top source classes of" in out
    assert "description" not in out
    assert predict.main([str(run), str(image), "--device", "cpu", "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)["predictions"][0]["explanation"]
    assert ex["sources"] == "source classes"
    assert ex["descriptions"] and all(d["text"] in imagenet_classnames() for d in ex["descriptions"])


def test_plot_prm_draws_the_prompt_of_a_classifier_run(blm_run):
    plot_prm = load_script("plot_prm")
    _, run, _ = blm_run
    assert plot_prm.main([str(run)]) == 0
    assert (run / "plots" / "prompt_0.png").stat().st_size > 1000


def test_make_table_shows_the_run_under_its_classifier(blm_run, capsys):
    make_table = load_script("make_table")
    tmp, run, _ = blm_run
    accuracy = json.loads((run / "results.json").read_text())["accuracy"]
    assert make_table.main([str(tmp / "out")]) == 0
    out = capsys.readouterr().out
    assert "timm:test_efficientnet" in out and f"{accuracy:.1f}" in out.split("BLM", 1)[1].splitlines()[0]
