"""ImageNet-V2, -Sketch, -A and -R on miniature layouts: ImageNet's class names (A and R: a subset),
test-only loading, the class-mismatch errors, and their download / check entries."""
import io
import os
import tarfile

import pytest

from tests.dataset_helpers import load
from tests.dataset_miniatures import (
    IMAGENET_CLASSES,
    IMAGENET_SUBSET,
    build,
    description_keys,
)
from tests.download_mirror import run_download

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNetSketch",
            "imagenet_a": "ImageNetA", "imagenet_r": "ImageNetR"}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_with_imagenets_class_names(tmp_path, name):
    build("imagenet", tmp_path)
    mini = build(name, tmp_path)
    imagenet = load(tmp_path, "ImageNet")
    before = sorted(os.listdir(mini.dataset_dir))
    ds = load(tmp_path, VARIANTS[name], NUM_SHOTS=16)
    names = dict(IMAGENET_CLASSES)
    if name in ("imagenet_a", "imagenet_r"):  # 200-class subsets: labels 0.. over the present classes
        assert ds.classnames == [names[w] for w in IMAGENET_SUBSET] == ["goldfish", "missile"]
    else:
        assert ds.classnames == imagenet.classnames
        assert ds.lab2cname == imagenet.lab2cname
    for d in ds.test:  # each image's label is its folder's class
        folder = os.path.basename(os.path.dirname(d.impath))
        wnid = IMAGENET_CLASSES[int(folder)][0] if name == "imagenetv2" else folder
        assert d.classname == names[wnid] == ds.lab2cname[d.label]
    assert len(ds.test) == len(ds.train_x) == 2 * ds.num_classes and ds.val == []
    assert not any("README" in d.impath for d in ds.test)
    assert sorted(os.listdir(mini.dataset_dir)) == before  # test-only: no few-shot cache written
    assert type(ds).descriptions_key == "I" and set(ds.classnames) <= set(description_keys("I"))


def test_variant_new_classes_subsample(tmp_path):
    build("imagenet_sketch", tmp_path)
    ds = load(tmp_path, "ImageNetSketch", SUBSAMPLE_CLASSES="new")
    assert ds.classnames == ["missile", "missile"] and sorted(ds.lab2cname) == [0, 1]


def test_variant_classes_differing_from_imagenet_name_the_first_mismatch(tmp_path):
    from datasets.errors import SplitFileError

    build("imagenet", tmp_path)
    mini = build("imagenet_r", tmp_path)
    path = os.path.join(mini.dataset_dir, "classnames.txt")
    with open(path) as f:
        lines = f.read().splitlines()
    lines[1] = "n01443537 gold fish"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(SplitFileError, match=r"classnames.txt line 2 is 'n01443537 gold fish', but "
                                             r"ImageNet's .* has 'n01443537 goldfish'"):
        load(tmp_path, "ImageNetR")
    with open(path, "w") as f:
        f.write("\n".join(lines[:1]) + "\n")
    with pytest.raises(SplitFileError, match=r"has 1 classes, ImageNet's .* has 4 \(first difference: "
                                             r"line 2, 'n01443537 goldfish' only in"):
        load(tmp_path, "ImageNetR")


def test_variant_folder_outside_imagenet_is_named(tmp_path):
    from datasets.errors import SplitFileError
    from tests.dataset_miniatures import write_image

    mini = build("imagenet_a", tmp_path)  # no imagenet/ beside it: the variant's own classnames.txt
    write_image(os.path.join(mini.dataset_dir, "imagenet-a", "n09999999", "x.jpg"))
    with pytest.raises(SplitFileError, match=r"class folder .*imagenet-a/n09999999 is not one of "
                                             r"ImageNet's classes"):
        load(tmp_path, "ImageNetA")
    v2 = build("imagenetv2", tmp_path)
    write_image(os.path.join(v2.dataset_dir, "imagenetv2-matched-frequency-format-val", "4", "x.jpg"))
    with pytest.raises(SplitFileError, match=r"folders must be named 0 \.\.\. 3"):
        load(tmp_path, "ImageNetV2")


def test_variant_missing_classnames_names_layout_and_download(tmp_path):
    mini = build("imagenet_sketch", tmp_path)
    os.remove(os.path.join(mini.dataset_dir, "classnames.txt"))
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path, "ImageNetSketch")
    assert "classnames.txt" in str(err.value)
    assert f"python -m datasets.download imagenet_sketch --root {tmp_path}" in str(err.value)


def test_variant_check_counts_test_images(tmp_path):
    from datasets.check import check_dataset, format_report

    build("imagenet_a", tmp_path)
    report = check_dataset("imagenet_a", str(tmp_path))
    assert report.status == "found" and list(report.splits) == ["test"]
    assert report.splits["test"].listed == report.splits["test"].present == 4
    assert "test 4 vs 7500" in format_report(report)
    assert check_dataset("ImageNetV2", str(tmp_path)).status == "missing"


def test_variant_downloads_and_manual_steps(tmp_path, mirror):
    src = build("imagenet_r", tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(os.path.join(src.dataset_dir, "imagenet-r"), arcname="imagenet-r")
    mirror.put("imagenet_r", "imagenet-r.tar", buf.getvalue())
    classnames = "".join(f"{w} {n}\n" for w, n in IMAGENET_CLASSES).encode()
    for name in ("imagenet_r", "imagenet_sketch"):
        mirror.put(name, "classnames.txt", classnames)
    root = tmp_path / "data"
    rc, out = run_download("imagenet_r", "imagenet_sketch", "--root", str(root), "--mirror", mirror.url)
    assert rc == 0, out
    assert load(root, "ImageNetR").classnames == ["goldfish", "missile"]
    assert "ImageNet-Sketch has no stable direct link" in out
    assert str(root / "imagenet-sketch" / "images") in out
    assert "imagenet_sketch manual" in " ".join(out.split("Summary:")[1].split())
    from datasets.sources import SOURCES

    assert {"imagenetv2", "imagenet_a"} <= set(SOURCES)
    assert SOURCES["imagenetv2"].remotes[0].url.startswith("https://huggingface.co/datasets/vaishaal/")


def test_training_on_a_variant_is_refused(tmp_path, capsys):
    import train

    build("imagenet_a", tmp_path)
    argv = ["--root", str(tmp_path), "--trainer", "AR", "--output-dir", str(tmp_path / "run"),
            "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "imagenet_a.yaml"),
            "--config-file", os.path.join(REPO, "configs", "trainers", "AR", "demo.yaml"),
            "MODEL.BACKBONE.NAME", "test-tiny"]
    assert train.main(argv) == 1
    err = capsys.readouterr().err
    assert "ERROR: ImageNetA is a test-only dataset" in err and "--eval-only --model-dir RUN" in err
    assert not (tmp_path / "run" / "results.json").exists()
