"""`python -m datasets.check` on the local datasets (Digits shifts, an ImageFolder) and the
description key an ImageFolder takes from its folder name (issue 10, defect 10)."""
import io
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

from datasets.check import main as check_main


def run_check(*argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = check_main([str(a) for a in argv])
    return rc, buf.getvalue()


def write_png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


@pytest.mark.slow
def test_check_digits_reports_each_built_shift(tmp_path):
    from datasets.digits_data import build_digits

    root = tmp_path / "data"
    rc, out = run_check("--root", root, "digits")  # nothing built yet
    assert rc == 1 and "digits (none)" in out and "missing" in out
    assert "train.py builds it on first use from scikit-learn (no download)" in out

    build_digits(str(root), "none", verbose=False)
    folder = build_digits(str(root), "inverted", verbose=False)
    broken = sorted((tmp_path / "data" / "digits" / "inverted" / "images" / "three").iterdir())[0]
    broken.write_bytes(b"not a png")
    rc, out = run_check("--root", root, "digits", "--quick")
    assert rc == 0, out
    assert "== digits (none) (" in out and "== digits (inverted) (" in out and folder in out
    rc, out = run_check("--root", root, "digits", "--shift", "inverted")
    assert rc == 1 and "digits (none)" not in out
    assert "digits (inverted)" in out and ": incomplete" in out and "1 unreadable" in out and broken.name in out


def test_check_imagefolder_before_and_after_its_split(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(4):
            write_png(tmp_path / "pets" / cls / f"{i}.png", 40 * i)
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image: the loader leaves it out, so does the check")
    rc, out = run_check("--root", tmp_path, "imagefolder", "--folder", "pets")
    assert rc == 0, out
    assert "== imagefolder" in out and "found" in out
    assert "all  : 8/8 images present" in out
    assert "split_ImageFolder.json is written on first use" in out

    (tmp_path / "pets" / "dog" / "2.png").write_bytes(b"")
    rc, out = run_check("--root", tmp_path, "imagefolder", "--folder", str(tmp_path / "pets"))
    assert rc == 1 and ": incomplete" in out and "1 unreadable" in out and "dog/2.png" in out

    rc, out = run_check("--root", tmp_path, "imagefolder", "--folder", "nowhere")
    assert rc == 1 and "missing" in out and "one sub-folder of images per class" in out


def test_check_imagefolder_needs_its_folder(capsys):
    assert check_main(["--root", "/tmp", "imagefolder"]) == 2
    assert "imagefolder needs --folder DIR" in capsys.readouterr().err


def imagefolder_cfg(folder, key=""):
    import engine
    from engine import get_cfg_default

    cfg = get_cfg_default()
    engine.extend_cfg(cfg)
    cfg.DATASET.NAME = "ImageFolder"
    cfg.DATASET.IMAGEFOLDER_DIR = folder
    cfg.DATASET.DESCRIPTIONS_KEY = key
    return cfg


def test_invalid_folder_key_says_where_it_came_from():
    """The check a description-based trainer runs first: the key must name where it came from."""
    from descriptions import resolve_file
    from trainers.base import VRTrainer

    cfg = imagefolder_cfg("/data/my pets")
    with pytest.raises(ValueError) as err:
        resolve_file(cfg.DATASET.NAME, "attributes", "des", key=VRTrainer.description_key_of(cfg))
    msg = str(err.value)
    assert "'my pets' comes from the name of the image folder (DATASET.IMAGEFOLDER_DIR /data/my pets)" in msg
    assert "Set DATASET.DESCRIPTIONS_KEY to override it, e.g. DATASET.DESCRIPTIONS_KEY my_pets." in msg
    assert VRTrainer.description_key_of(imagefolder_cfg("/data/my pets", key="pets")) == "pets"
    assert VRTrainer.description_key_of(imagefolder_cfg("/data/my_pets/")) == "my_pets"
