"""Fashion-MNIST / MNIST from IDX files (datasets/mnist.py, datasets/mnist_data.py), on small generated IDX
files: the layout, the split, the few-shot cache, the test subset and what the download command says."""
import json
import os
import struct

import pytest

from datasets import download
from datasets.errors import DatasetNotFoundError
from datasets.mnist_data import FASHION, MNIST, build, missing_message, read_idx
from plugins import project_cfg
from tests.dataset_helpers import write_idx


def cfg_for(root, name="FashionMNIST", shots=2, test_per_class=0):
    cfg = project_cfg()
    cfg.DATASET.NAME, cfg.DATASET.ROOT, cfg.DATASET.NUM_SHOTS = name, str(root), shots
    cfg.DATASET.MNIST_TEST_PER_CLASS = test_per_class
    cfg.SEED = 1
    return cfg


def test_idx_reader_checks_the_header(tmp_path):
    write_idx(tmp_path / "raw", gz=False)
    assert read_idx(str(tmp_path / "raw" / "train-images-idx3-ubyte")).shape == (50, 28, 28)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28) + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(str(tmp_path / "bad"))


def test_fashion_mnist_loads_from_torchvision_layout_with_split_fewshot_and_test_subset(tmp_path):
    from datasets.mnist import FashionMNIST

    write_idx(tmp_path / "FashionMNIST" / "raw")  # torchvision's layout
    ds = FashionMNIST(cfg_for(tmp_path, shots=2, test_per_class=2))
    assert ds.classnames[0] == "T-shirt/top" and ds.classnames[9] == "Ankle boot"
    assert len(ds.train_x) == 20 and len(ds.test) == 20  # 2 shots x 10; the first 2 test images per class
    assert [d.label for d in ds.test[:10]] == list(range(10))
    meta = json.loads((tmp_path / "fashion_mnist" / "fashion_mnist_meta.json").read_text())
    assert meta["counts"] == {"train": 40, "val": 10, "test": 30}
    assert meta["idx_files"]["train-images-idx3-ubyte"]["path"].endswith("FashionMNIST/raw/train-images-idx3-ubyte.gz")
    assert (tmp_path / "fashion_mnist" / "split_fewshot" / "shot_2-seed_1.pkl").is_file()
    full = FashionMNIST(cfg_for(tmp_path, shots=2))
    assert len(full.test) == 30 and [d.impath for d in full.train_x] == [d.impath for d in ds.train_x]


def test_missing_idx_files_say_what_to_install_where(tmp_path):
    from datasets.mnist import MNIST as MnistLoader
    from datasets.mnist import FashionMNIST

    with pytest.raises(DatasetNotFoundError) as err:
        build(MNIST, str(tmp_path))
    assert str(tmp_path / "mnist" / "raw") in str(err.value) and str(tmp_path / "MNIST" / "raw") in str(err.value)
    assert "python -m datasets.download mnist" in str(err.value)
    assert "apt-get install -y dataset-fashion-mnist" in missing_message(FASHION, str(tmp_path))
    assert "apt-get" not in missing_message(MNIST, str(tmp_path))  # no package ships MNIST's files
    with pytest.raises(ValueError, match="MNIST_TEST_PER_CLASS must be >= 0"):
        write_idx(tmp_path / "mnist" / "raw")
        MnistLoader(cfg_for(tmp_path, name="MNIST", test_per_class=-1))
    assert FashionMNIST.source.name == "fashion_mnist"


def test_download_command_builds_from_local_idx_files_or_says_what_to_do(tmp_path, capsys):
    assert download.main(["mnist", "--root", str(tmp_path)]) == 0  # nothing there: manual steps, not a failure
    out = capsys.readouterr().out
    assert "mnist" in out and "manual" in out and "IDX files were not found" in out
    write_idx(tmp_path / "mnist" / "raw", gz=False)
    assert download.main(["mnist", "--root", str(tmp_path)]) == 0
    assert "ok" in capsys.readouterr().out and (tmp_path / "mnist" / "mnist_meta.json").is_file()
    assert len(list((tmp_path / "mnist" / "images").rglob("*.png"))) == 80


def test_the_layout_text_names_the_folders_under_the_data_root():
    """The layout text (part of the error when a dataset is missing) says where the IDX files go, under <ROOT>:
    not under the folder the command happened to run from."""
    from datasets.mnist import MNIST as MNISTLoader
    from datasets.mnist import FashionMNIST

    for loader, family in ((FashionMNIST, FASHION), (MNISTLoader, MNIST)):
        folder = family.folder
        assert f"<ROOT>/{folder}/raw" in loader.layout and os.getcwd() not in loader.layout
