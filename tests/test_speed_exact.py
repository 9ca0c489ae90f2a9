"""Each speed option that claims to be exact gives the same training losses for the same seed on the CPU
(trainers/pipeline.py: image caches, per-sample augmentation seeds with loader workers; testing only at
the end; text embeddings computed once); DVP's batched prompts match one encoder call per prompt to
float rounding."""
import pytest
import torch

from tests.trainer_fixtures import make_trainer, toy_cfg, toy_descriptions  # noqa: F401
from trainers.pipeline import split_transform


def train_losses(name, root, descriptions, out, opts=(), epochs=2):
    """Train in-process; return (per-step losses, trainer); ``trainer.text_encodings`` counts the text
    encoder calls made during training."""
    trainer = make_trainer(toy_cfg(name, root, out, descriptions, epochs=epochs, opts=list(opts)))
    losses, step, encode = [], trainer.forward_backward, trainer.clip.encode_text
    trainer.text_encodings = 0

    def counting(*a, **k):
        trainer.text_encodings += 1
        return encode(*a, **k)

    trainer.clip.encode_text = counting

    def recording(batch):
        summary = step(batch)
        losses.append(summary["loss"])
        return summary

    trainer.forward_backward = recording
    trainer.train()
    return losses, trainer


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["per_sample", "global"])
def test_training_image_cache_is_exact(mode, toy_root, toy_descriptions, tmp_path):
    runs = {}
    for cache in (False, True):
        losses, trainer = train_losses("AR", toy_root, toy_descriptions, tmp_path / str(cache),
                                       ["DATALOADER.CACHE_TRAIN", cache, "DATALOADER.AUGMENT_SEED", mode])
        assert (trainer.train_loader_x.dataset.cache is not None) == cache
        runs[cache] = (losses, trainer.model.prompts.delta.detach().clone())
    assert len(runs[True][0]) == 2 * 3 and runs[True][0] == runs[False][0]
    assert torch.equal(runs[True][1], runs[False][1])


@pytest.mark.slow
def test_loader_workers_are_exact_with_per_sample_seeds(toy_root, toy_descriptions, tmp_path):
    base = ["DATALOADER.AUGMENT_SEED", "per_sample", "DATALOADER.CACHE_TRAIN", True]
    serial, _ = train_losses("AR", toy_root, toy_descriptions, tmp_path / "w0", base + ["DATALOADER.NUM_WORKERS", 0])
    workers, _ = train_losses("AR", toy_root, toy_descriptions, tmp_path / "w2", base + ["DATALOADER.NUM_WORKERS", 2])
    assert workers == serial


@pytest.mark.slow
def test_testing_every_epoch_changes_no_training_step_and_test_cache_is_exact(toy_root, toy_descriptions, tmp_path):
    quiet, t1 = train_losses("DVP_CLS", toy_root, toy_descriptions, tmp_path / "end", epochs=3)
    curve, t2 = train_losses("DVP_CLS", toy_root, toy_descriptions, tmp_path / "each", epochs=3,
                             opts=["TEST.PER_EPOCH", True, "DATALOADER.CACHE_TEST", True])
    assert curve == quiet and len(t2.per_epoch_test) == 2
    assert t2.text_encodings == 0  # the text embeddings were computed once, at build time
    assert t2.test_loader.dataset.cache is not None and t1.test_loader.dataset.cache is None
    assert t2.test() == t1.test()
    assert t2.evaluator._y_pred == t1.evaluator._y_pred


@pytest.mark.slow
def test_batched_prompts_match_one_encoder_call_per_prompt(toy_root, toy_descriptions, tmp_path):
    # batch 3: ENCODER_CHUNK 3 runs the v = 2 prompts as separate encoder calls (the reference's loop)
    batched, t1 = train_losses("DVP_CLS", toy_root, toy_descriptions, tmp_path / "b", epochs=3)
    looped, t2 = train_losses("DVP_CLS", toy_root, toy_descriptions, tmp_path / "s", epochs=3,
                              opts=["TRAINER.DVP_CLS.ENCODER_CHUNK", 3])
    assert looped == pytest.approx(batched, rel=1e-5)
    assert torch.allclose(t1.model.prompts.delta, t2.model.prompts.delta, atol=1e-4)
    assert torch.equal(t1.model.aggregation.weight, t2.model.aggregation.weight)


def test_transform_split_and_bad_option(toy_root, toy_descriptions, tmp_path):
    from trainers.pipeline import vr_transforms

    head, tail = split_transform(vr_transforms(192)[0])
    assert [type(t).__name__ for t in head.transforms] == ["Resize"]
    assert [type(t).__name__ for t in tail.transforms] == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor"]
    head, tail = split_transform(vr_transforms(192)[1])
    assert [type(t).__name__ for t in head.transforms] == ["Resize", "CenterCrop"]
    with pytest.raises(ValueError, match='Unknown DATALOADER.AUGMENT_SEED "sometimes"'):
        make_trainer(toy_cfg("AR", toy_root, tmp_path, toy_descriptions, opts=["DATALOADER.AUGMENT_SEED", "sometimes"]))


def test_cache_gives_the_same_images_and_respects_its_memory_limit(toy_root, capsys):
    from engine import build_dataset
    from plugins import project_cfg
    from trainers.pipeline import VRDatasetWrapper, vr_transforms

    cfg = project_cfg()
    cfg.DATASET.NAME, cfg.DATASET.ROOT = "ToyColors", toy_root
    data = build_dataset(cfg).train_x
    train_tfm, test_tfm = vr_transforms(192)
    for tfm in (train_tfm, test_tfm):
        plain = VRDatasetWrapper(cfg, data, transform=tfm, is_train=True, seed=5)
        cached = VRDatasetWrapper(cfg, data, transform=tfm, is_train=True, cache=True, seed=5)
        assert cached.cache is not None and len(cached.cache) == len(data)
        for wrapper in (plain, cached):
            wrapper.set_epoch(3)
        for i in (0, len(data) - 1):
            assert torch.equal(plain[i]["img"], cached[i]["img"]) and plain[i]["label"] == cached[i]["label"]
    cfg.DATALOADER.CACHE_MAX_MB = 0
    capsys.readouterr()
    refused = VRDatasetWrapper(cfg, data, transform=train_tfm, is_train=True, cache=True, what="training images")
    assert refused.cache is None
    assert "> DATALOADER.CACHE_MAX_MB = 0; they are read from disk every epoch" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["DVP_CLS", "VP"])  # padding prompts (v = 2), a watermark prompt
def test_first_layer_split_gives_the_plain_training_losses(name, toy_root, toy_descriptions, tmp_path):
    runs = {}
    for split in (False, True):
        losses, trainer = train_losses(name, toy_root, toy_descriptions, tmp_path / str(split), epochs=2,
                                       opts=[f"TRAINER.{name}.FIRST_LAYER_SPLIT", split])
        assert trainer.extra_results()["vr"]["first_layer_split"] == ("on" if split else "off (option)")
        runs[split] = (losses, trainer.model.prompts.delta.detach().clone())
    assert len(runs[True][0]) > 0
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-5)
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-5)
