"""Images a user's folder may hold (issue 10, 7 and 8): 16-bit files, non-images, corrupt and huge files,
and a data root that cannot be written."""
import errno
import os

import numpy as np
import pytest
from PIL import Image

from tests.dataset_helpers import load, make_folder


def test_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    from engine.imageio import read_image

    ramp = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I;16")
    img = np.asarray(read_image(str(path)))
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    np.testing.assert_array_equal(img[..., 0], np.rint(ramp / 65535 * 255).astype(np.uint8))
    assert img.mean() == pytest.approx(127.4, abs=1)  # PIL's convert("RGB") gives ~254 (all white)


def test_float_image_is_refused_with_its_name(tmp_path):
    from engine.imageio import ImageReadError, read_image

    path = tmp_path / "depth.tif"
    Image.fromarray(np.random.rand(8, 8).astype(np.float32)).save(path)
    with pytest.raises(ImageReadError, match=f"{path}.*floating-point"):
        read_image(str(path))


def test_huge_image_names_the_file_and_how_to_allow_it(tmp_path, monkeypatch):
    from engine.imageio import ImageReadError, read_image

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path)  # 1600 pixels > 2 x the limit below
    monkeypatch.setenv("VR_MAX_IMAGE_PIXELS", "500")
    with pytest.raises(ImageReadError) as err:
        read_image(str(path))
    assert str(path) in str(err.value) and "VR_MAX_IMAGE_PIXELS" in str(err.value)
    monkeypatch.setenv("VR_MAX_IMAGE_PIXELS", "0")  # no limit: trusted data
    assert read_image(str(path)).size == (40, 40)
    monkeypatch.delenv("VR_MAX_IMAGE_PIXELS")
    assert read_image(str(path)).size == (40, 40)  # back to PIL's default limit
    assert Image.MAX_IMAGE_PIXELS is not None


def test_imagefolder_lists_only_images_and_says_what_it_left_out(tmp_path, capsys):
    folder = make_folder(tmp_path / "pets", ["cat", "dog"])
    (tmp_path / "pets" / "cat" / "readme.txt").write_text("where these came from\n")
    (tmp_path / "pets" / "dog" / "Thumbs.db").write_bytes(b"\0" * 16)
    ds = load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets")
    out = capsys.readouterr().out
    assert "2 file(s) without an image extension" in out and "readme.txt" in out
    with open(os.path.join(folder, "split_ImageFolder.json")) as f:
        listed = f.read()
    assert "readme" not in listed and "Thumbs" not in listed
    assert len(ds.train_x) + len(ds.val) + len(ds.test) == 10


def test_imagefolder_stops_before_training_on_an_unreadable_image(tmp_path):
    from engine.imageio import ImageReadError

    make_folder(tmp_path / "pets", ["cat", "dog"])
    bad = tmp_path / "pets" / "dog" / "3.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError) as err:
        load(tmp_path, "ImageFolder", IMAGEFOLDER_DIR="pets")
    assert str(bad) in str(err.value) and "split_ImageFolder.json" in str(err.value)


def test_corrupt_image_in_a_loader_worker_is_one_error_line(toy_root, tmp_path, capsys):
    """The error raised in a DataLoader worker reaches the console and log.txt as one line naming the file."""
    import shutil

    import tests.toy_plugin  # noqa: F401
    import train
    from tests.toy_runs import TOY

    root = tmp_path / "data"
    shutil.copytree(toy_root, root)
    bad = root / "toy_colors" / "images" / "red" / "008.png"  # a test image: read after training
    bad.write_bytes(b"\x89PNG broken")
    out = tmp_path / "run"
    code = train.main(["--root", str(root), "--output-dir", str(out)] + TOY + ["DATALOADER.NUM_WORKERS", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: Cannot read image {bad}")
    assert (out / "log.txt").read_text().strip().splitlines()[-1] == lines[0]


@pytest.mark.slow
def test_read_only_data_root_puts_split_and_fewshot_cache_in_the_user_cache(tmp_path, monkeypatch, capsys):
    import engine.io

    folder = make_folder(tmp_path / "data" / "pets", ["cat", "dog"])
    cache = tmp_path / "user_cache"
    monkeypatch.setenv("VR_CACHE_DIR", str(cache))
    real = engine.io.atomic_write_bytes

    def read_only_root(path, data, **kwargs):  # (chmod alone does not stop root, who may run the tests)
        if str(path).startswith(folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, data, **kwargs)

    monkeypatch.setattr(engine.io, "atomic_write_bytes", read_only_root)
    os.chmod(folder, 0o555)
    try:
        first = load(tmp_path / "data", "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=2)
        out = capsys.readouterr().out
        assert "the data root cannot be written" in out and str(cache) in out
        written = sorted(os.path.relpath(os.path.join(d, f), cache) for d, _, fs in os.walk(cache) for f in fs)
        assert [os.path.basename(w) for w in written] == ["split_ImageFolder.json", "shot_2-seed_1.pkl"]
        assert sorted(os.listdir(folder)) == ["cat", "dog"]  # nothing written into the data root
        again = load(tmp_path / "data", "ImageFolder", IMAGEFOLDER_DIR="pets", NUM_SHOTS=2)
        out = capsys.readouterr().out
        assert "using the few-shot cache" in out and "using the split file" in out
        assert [d.impath for d in again.train_x] == [d.impath for d in first.train_x]
    finally:
        os.chmod(folder, 0o755)
    with open(os.path.join(cache, [w for w in written if w.endswith(".pkl")][0]), "rb") as f:
        assert b"dassl.data.datasets.base_dataset" in f.read()  # the same cache format as beside the data
