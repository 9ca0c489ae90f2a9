"""A per-class head trained on ImageNet, evaluated on ImageNet-A / -R (a subset of its classes) and on
ImageNet-Sketch (the same classes): on miniature layouts (tests/dataset_miniatures.py: ImageNet's 4 classes
tench, goldfish and two 'missile's; A and R hold goldfish and the second missile, n04008634) with test-tiny.
The head is the trained one restricted to the evaluated classes' rows, matched by WordNet id (never by name:
the first 'missile' is not A's); results.json records the subset; a class outside training is one ERROR."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import train
from engine import build_trainer, set_random_seed
from tests.conftest import REPO
from tests.dataset_miniatures import IMAGENET_CLASSES, IMAGENET_SUBSET, build
from trainers.evaluated_run import evaluated_record, evaluating

pytestmark = pytest.mark.usefixtures("one_torch_thread")
EPOCHS = 2
SUBSET_ROWS = [[w for w, _ in IMAGENET_CLASSES].index(w) for w in IMAGENET_SUBSET]  # [1, 3]


def args(method, root, out, dataset, *opts, eval_of=None):
    """train.py arguments; ``eval_of``: --eval-only of that run's last epoch."""
    evaluate = ["--eval-only", "--model-dir", str(eval_of), "--load-epoch", str(EPOCHS)] if eval_of else []
    return ["--root", str(root), "--output-dir", str(out), "--trainer", method, "--seed", "1", *evaluate,
            "--config-file", os.path.join(REPO, "configs", "trainers", method, "vit_b16.yaml"),
            "DATASET.NAME", dataset, "MODEL.BACKBONE.NAME", "test-tiny", "DATALOADER.NUM_WORKERS", "0",
            "DATALOADER.TEST.BATCH_SIZE", "16", "DATASET.NUM_SHOTS", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "3",
            "OPTIM.MAX_EPOCH", str(EPOCHS), "OPTIM.LR", "0.05", "OPTIM.WARMUP_EPOCH", "0",
            "TRAINER.TASKRES.SCRIPT_DEFAULTS", "False", *opts]


@pytest.fixture(scope="module")
def imagenet_run(tmp_path_factory):
    """(data root, run folder) of TaskRes trained on the miniature ImageNet (all 4 classes)."""
    root = tmp_path_factory.mktemp("data")
    for name in ("imagenet", "imagenet_a", "imagenet_r", "imagenet_sketch"):
        build(name, root)
    run = tmp_path_factory.mktemp("runs") / "imagenet"
    assert train.main(args("TaskRes", root, run, "ImageNet")) == 0
    return root, run


def evaluated_trainer(root, run, out, dataset):
    """The --eval-only trainer of ``run`` on ``dataset``, built and loaded as train.py does."""
    a = train.build_parser().parse_args(args("TaskRes", root, out, dataset, eval_of=run))
    set_random_seed(1)
    with evaluating(*evaluated_record(str(run), EPOCHS)):
        trainer = build_trainer(train.setup_cfg(a))
    trainer.load_model(str(run), epoch=EPOCHS)
    trainer.set_model_mode("eval")
    return trainer


@torch.no_grad()
def test_imagenet_a_scores_exactly_the_trained_rows_and_records_them(imagenet_run, tmp_path):
    root, run = imagenet_run
    out = tmp_path / "a"
    assert train.main(args("TaskRes", root, out, "ImageNetA", eval_of=run)) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["classes"]["subset"] == {"matched_by": "wnid", "trained": 4, "evaluated": 2,
                                           "rows": SUBSET_ROWS, "class_ids": list(IMAGENET_SUBSET)}
    assert result["classes"]["evaluated"] == ["goldfish", "missile"]
    assert result["classes"]["policy"].startswith("subset of the training classes")
    assert result["taskres"]["base_templates"][0] == "itap of a {}."  # T as trained: ImageNet's 8 templates

    sub = evaluated_trainer(root, run, tmp_path / "a2", "ImageNetA")
    full = evaluated_trainer(root, run, tmp_path / "full", "ImageNet")  # the head as trained, all 4 classes
    assert full.class_policy["policy"] == "same classes: the checkpoint as trained"
    batch = next(iter(sub.test_loader))
    images, labels = batch["img"], batch["label"]
    logits = sub.model_inference(images)
    assert logits.shape == (4, 2)
    torch.testing.assert_close(logits, full.model_inference(images)[:, SUBSET_ROWS], rtol=0, atol=0)
    # the same numbers from the rows of T and X themselves (TaskRes: logits = s cos(f, T_c + alpha X_c))
    head = full.model.head
    rows = F.normalize(head.base_text_features + head.alpha * head.text_feature_residuals, dim=-1)[SUBSET_ROWS]
    f = F.normalize(full.encoder.model.encode_image(images).float(), dim=-1)
    torch.testing.assert_close(logits, head.logit_scale * f @ rows.t())
    accuracy = 100.0 * (logits.argmax(1) == labels).float().mean().item()
    assert result["accuracy"] == pytest.approx(accuracy)


def test_a_target_class_outside_the_training_classes_is_one_error(imagenet_run, tmp_path, capsys):
    root, _ = imagenet_run
    base = tmp_path / "base"  # trained on the base half: tench, goldfish; ImageNet-R also holds missile n04008634
    assert train.main(args("TaskRes", root, base, "ImageNet", "DATASET.SUBSAMPLE_CLASSES", "base")) == 0
    capsys.readouterr()
    out = tmp_path / "r"
    assert train.main(args("TaskRes", root, out, "ImageNetR", eval_of=base)) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "1 of ImageNetR's 2 classes are not among the 2 classes" in errors[0]
    assert "n04008634 'missile'" in errors[0] and "matched by wnid" in errors[0]
    assert "Evaluate on the *test* set" not in captured.out and not (out / "results.json").exists()


@torch.no_grad()
def test_same_classes_on_sketch_use_the_trained_head(imagenet_run, tmp_path):
    root, run = imagenet_run
    sketch = evaluated_trainer(root, run, tmp_path / "s", "ImageNetSketch")
    full = evaluated_trainer(root, run, tmp_path / "full", "ImageNet")
    assert sketch.class_policy["policy"] == "same classes: the checkpoint as trained"
    assert sketch.model.class_rows is None
    images = next(iter(sketch.test_loader))["img"]
    torch.testing.assert_close(sketch.model_inference(images), full.model_inference(images), rtol=0, atol=0)


def test_matching_refuses_renamed_classes_other_id_kinds_and_unrecorded_runs(imagenet_run):
    from tests.dataset_helpers import load
    from trainers.class_subset import class_subset
    from trainers.run_record import CheckpointError

    root, run = imagenet_run
    record = json.loads((run / "run.json").read_text())
    assert record["class_ids"] == {"kind": "wnid", "ids": [w for w, _ in IMAGENET_CLASSES]}
    a = load(root, "ImageNetA")
    assert class_subset(record, a, "ckpt")["rows"] == SUBSET_ROWS
    renamed = {**record, "classnames": ["tench", "gold fish", "missile", "missile"]}
    with pytest.raises(CheckpointError, match="class n01443537 is named 'goldfish', but 'gold fish'"):
        class_subset(renamed, a, "ckpt")
    with pytest.raises(CheckpointError, match="identifies its classes by folder, ImageNetA by wnid"):
        class_subset({**record, "class_ids": {"kind": "folder", "ids": record["class_ids"]["ids"]}}, a, "ckpt")
    with pytest.raises(CheckpointError, match="records no class identities"):
        class_subset({**record, "class_ids": None}, a, "ckpt")
    swapped = {**record, "class_ids": {"kind": "wnid", "ids": ["n01440764", "n01443537", "n04008634",
                                                                "n03773504"]}}  # the two missiles swapped
    assert class_subset(swapped, load(root, "ImageNet"), "ckpt")["rows"] == [0, 1, 3, 2]
