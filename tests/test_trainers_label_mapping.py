"""ILMVP, BLM and BLMPlus in-process on ToyColors with test-tiny: the references' source texts, the mapping
estimated before every epoch from a pass with the current prompt, checkpoints, and what they refuse."""
import csv

import pytest
import torch
import torch.nn.functional as F

from tests.toy_plugin import TOY_CLASSES
from tests.trainer_fixtures import make_trainer, toy_cfg
from trainers.label_mapping import reference_templates, source_name

ONE_BATCH = ["DATALOADER.TRAIN_X.BATCH_SIZE", 8, "OPTIM.LR", 1.0, "TEST.NO_TEST", True]


def test_the_source_texts_are_81_templates_times_the_class_names_template_major(toy_root, tmp_path):
    trainer = make_trainer(toy_cfg("BLM", toy_root, tmp_path, "", epochs=1, opts=ONE_BATCH))
    table, c = trainer.model.text_table, len(TOY_CLASSES)
    templates = reference_templates()
    assert len(templates) == 81 and templates[0] == "This is a photo of a {}."
    assert templates[1] == "a bad photo of a {}." and templates[-1] == "a tattoo of the {}."
    assert len(table) == 81 * c and not table.blocked
    assert table.texts[c + 2] == [f"a bad photo of a {TOY_CLASSES[2]}."]  # text s: template s // C, class s % C
    assert table.classes.tolist() == [s % c for s in range(81 * c)]
    assert source_name("Sea_Lion-Pup") == "sea lion pup"


@pytest.mark.slow
def test_the_mapping_is_estimated_before_every_epoch_and_written_with_the_run(toy_root, tmp_path):
    """(Training, checkpoints and --eval-only: the registry-parametrised tests of tests/test_trainers_vr.py.)"""
    trainer = make_trainer(toy_cfg("BLM", toy_root, tmp_path, "", epochs=3, opts=ONE_BATCH))
    trainer.train()
    agg = trainer.model.aggregation
    assert int(agg.epochs_estimated) == 3  # once before each epoch
    assert agg.last_counts.sum() == 8  # every training image counted once, by its argmax
    with open(tmp_path / "label_map.csv") as f:
        rows = list(csv.DictReader(f))
    top = {r["class"]: int(r["source"]) for r in rows if r["rank"] == "1"}
    assert top == {c: int(agg.weight[:, t].argmax()) for t, c in enumerate(TOY_CLASSES)}
    assert torch.equal(torch.load(tmp_path / "label_map.pt", weights_only=True)["omega"], agg.weight)


@pytest.mark.slow
def test_the_mapping_of_epoch_0_is_counted_with_the_zero_prompt_before_any_step(toy_root, tmp_path):
    """The references estimate the mapping before every epoch, epoch 0 included: a pass with the untrained
    (zero) watermark over the un-augmented training images, the argmax of every sample counted."""
    trainer = make_trainer(toy_cfg("ILMVP", toy_root, tmp_path, "", epochs=1, opts=ONE_BATCH))
    model = trainer.model
    steps = [type(t).__name__ for t in trainer.train_loader_x.dataset.transform.transforms]
    assert steps == ["Resize", "CenterCrop", "ToTensor"]  # no augmentation: the test transform, as the references
    batches = list(trainer.train_loader_x)  # one pass: images and labels of the same order
    images, labels = torch.cat([b["img"] for b in batches]), torch.cat([b["label"] for b in batches])
    with torch.no_grad():
        z = model.description_logits(images)
    expected = torch.zeros(len(model.text_table), len(TOY_CLASSES), dtype=torch.float64)
    expected.index_put_((z.argmax(1), labels), torch.ones(len(labels), dtype=torch.float64), accumulate=True)
    trainer.train()
    agg = model.aggregation
    assert torch.equal(agg.last_counts, expected)
    assert agg.weight.argmax(0).tolist() == agg.greedy(expected).tolist()
    assert torch.count_nonzero(model.prompts.delta) > 0  # and then the epoch trained the prompt


@pytest.mark.slow
def test_a_training_step_uses_the_estimated_mapping(toy_root, tmp_path):
    trainer = make_trainer(toy_cfg("BLM", toy_root, tmp_path, "", epochs=1, opts=ONE_BATCH))
    trainer.before_train()
    trainer.epoch = 0
    trainer.before_epoch()  # the pass: omega estimated from the zero prompt
    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)[:2]
    with torch.no_grad():
        z = trainer.model.description_logits(image)
        expected = F.cross_entropy(z @ trainer.model.aggregation.weight, label).item()
    assert trainer.forward_backward(batch)["loss"] == pytest.approx(expected, rel=1e-6)


def test_unknown_source_templates_is_an_error_before_loading(toy_root, tmp_path):
    with pytest.raises(ValueError, match='Unknown source templates "many"'):
        make_trainer(toy_cfg("ILMVP", toy_root, tmp_path, "", epochs=1,
                             opts=ONE_BATCH + ["TRAINER.ILMVP.SOURCE_TEMPLATES", "many"]))
