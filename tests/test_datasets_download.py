"""`python -m datasets.download` and `python -m datasets.check` against a local HTTP mirror serving
generated archives (nothing leaves 127.0.0.1)."""
import dataclasses
import io
import os
import shutil
import sys
import tarfile
import zipfile
from contextlib import redirect_stdout

import pytest

from tests.conftest import run_cmd
from tests.dataset_helpers import load
from tests.dataset_miniatures import build
from tests.download_mirror import run_download


def tar_gz(folder, arcroot):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=arcroot)
    return buf.getvalue()


def zip_folder(folder, arcroot, extra=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for dirpath, _, files in os.walk(folder):
            for f in files:
                full = os.path.join(dirpath, f)
                zf.write(full, os.path.join(arcroot, os.path.relpath(full, folder)))
        for name, data in extra:
            zf.writestr(name, data)
    return buf.getvalue()


def with_checksums(monkeypatch, name, **md5_by_file):
    """Give the generated archives of ``name`` their checksums in its loader's source (as for real ones)."""
    from datasets.catalog import find_loader

    loader = find_loader(name)
    src = loader.source
    remotes = tuple(dataclasses.replace(r, md5=md5_by_file.get(r.filename, r.md5), sha256="") for r in src.remotes)
    monkeypatch.setattr(loader, "source", dataclasses.replace(src, remotes=remotes))


def serve_dtd(mirror, tmp_path):
    """dtd-r1.0.1.tar.gz (dtd/images/...) and the split file, made from a miniature."""
    mini = build("dtd", tmp_path / "src")
    archive = tar_gz(mini.dataset_dir + "/images", "dtd/images")
    md5 = mirror.put("dtd", "dtd-r1.0.1.tar.gz", archive)
    with open(mini.split_path, "rb") as f:
        mirror.put("dtd", "split_zhou_DescribableTextures.json", f.read())
    return mini, md5


@pytest.mark.slow
def test_download_unpacks_verifies_and_skips_on_rerun(tmp_path, mirror, monkeypatch):
    mini, md5 = serve_dtd(mirror, tmp_path)
    with_checksums(monkeypatch, "dtd", **{"dtd-r1.0.1.tar.gz": md5})
    root = tmp_path / "data"
    rc, out = run_download("dtd", "--root", str(root), "--mirror", mirror.url)
    assert rc == 0, out
    assert sorted(os.listdir(root / "dtd")) == ["images", "split_zhou_DescribableTextures.json"]
    assert sorted(os.listdir(root / "dtd" / "images")) == sorted(mini.classnames)
    assert load(root, "DescribableTextures").classnames == mini.classnames
    n = len(mirror.requests)
    rc, out = run_download("dtd", "--root", str(root), "--mirror", mirror.url)
    assert rc == 0 and out.count("already present") == 2 and len(mirror.requests) == n


def test_interrupted_unpacking_is_redone(tmp_path, mirror, monkeypatch):
    mini, md5 = serve_dtd(mirror, tmp_path)
    with_checksums(monkeypatch, "dtd", **{"dtd-r1.0.1.tar.gz": md5})
    root = tmp_path / "data"
    assert run_download("dtd", "--root", str(root), "--mirror", mirror.url, "--keep-archives")[0] == 0
    archive = root / "dtd" / ".download" / "dtd-r1.0.1.tar.gz"
    assert archive.exists()
    # as if the run had been killed half-way through unpacking: one class folder not yet moved in
    shutil.rmtree(root / "dtd" / "images" / mini.classnames[0])
    (root / "dtd" / ".download" / "dtd-r1.0.1.tar.gz.unpacking").write_text("")
    n = len(mirror.requests)
    rc, out = run_download("dtd", "--root", str(root), "--mirror", mirror.url)
    assert rc == 0, out
    assert sorted(os.listdir(root / "dtd" / "images")) == sorted(mini.classnames)
    assert len(mirror.requests) == n  # the kept archive was reused, then deleted
    assert not (root / "dtd" / ".download").exists()


def test_checksum_mismatch_deletes_the_file(tmp_path, mirror, monkeypatch):
    serve_dtd(mirror, tmp_path)
    with_checksums(monkeypatch, "dtd", **{"dtd-r1.0.1.tar.gz": "0" * 32})
    rc, out = run_download("dtd", "--root", str(tmp_path / "data"), "--mirror", mirror.url)
    assert rc == 1
    assert "md5 checksum mismatch (expected 00000000000000000000000000000000" in out
    assert not os.path.exists(tmp_path / "data" / "dtd" / ".download" / "dtd-r1.0.1.tar.gz")
    assert not os.path.exists(tmp_path / "data" / "dtd" / "images")


def test_interrupted_download_resumes(tmp_path, mirror, monkeypatch):
    mini = build("eurosat", tmp_path / "src")
    archive = zip_folder(os.path.join(mini.dataset_dir, "2750"), "2750")
    md5 = mirror.put("eurosat", "EuroSAT.zip", archive)
    with open(mini.split_path, "rb") as f:
        mirror.put("eurosat", "split_zhou_EuroSAT.json", f.read())
    with_checksums(monkeypatch, "eurosat", **{"EuroSAT.zip": md5})
    mirror.truncate_once.add("eurosat/EuroSAT.zip")
    root = tmp_path / "data"
    rc, out = run_download("eurosat", "--root", str(root), "--mirror", mirror.url)
    assert rc == 1 and "run the same command again to resume" in out
    part = root / "eurosat" / ".download" / "EuroSAT.zip.part"
    have = part.stat().st_size
    assert 0 < have < len(archive)
    rc, out = run_download("eurosat", "--root", str(root), "--mirror", mirror.url)
    assert rc == 0, out
    assert ("eurosat/EuroSAT.zip", f"bytes={have}-") in mirror.requests
    assert load(root, "EuroSAT").classnames == mini.classnames


def test_nested_archive_and_gdrive_failure_gives_manual_link(tmp_path, mirror, monkeypatch):
    """Caltech's zip holds 101_ObjectCategories.tar.gz; its split file is missing on the mirror."""
    mini = build("caltech101", tmp_path / "src")
    inner = tar_gz(os.path.join(mini.dataset_dir, "101_ObjectCategories"), "101_ObjectCategories")
    empty = tmp_path / "empty"
    empty.mkdir()
    archive = zip_folder(str(empty), "caltech-101", extra=[("caltech-101/101_ObjectCategories.tar.gz", inner),
                                                            ("caltech-101/Annotations.tar", b"")])
    md5 = mirror.put("caltech101", "caltech-101.zip", archive)
    with_checksums(monkeypatch, "caltech101", **{"caltech-101.zip": md5})
    root = tmp_path / "data"
    rc, out = run_download("caltech101", "--root", str(root), "--mirror", mirror.url)
    assert rc == 1
    assert "https://drive.google.com/file/d/1hyarUivQE36mY6jSomru6Fjd-JzwcCzN/view" in out
    assert str(root / "caltech-101" / ".download" / "split_zhou_Caltech101.json") in out
    folders = sorted(os.listdir(root / "caltech-101" / "101_ObjectCategories"))
    assert folders == sorted(os.listdir(os.path.join(mini.dataset_dir, "101_ObjectCategories")))
    # without the split file the loader falls back to CoOp's seeded split
    assert load(root, "Caltech101").classnames == mini.classnames


def test_manual_datasets_print_their_steps(tmp_path, mirror):
    mirror.put("imagenet", "classnames.txt", b"n01440764 tench\n")
    mirror.put("stanford_cars", "split_zhou_StanfordCars.json", b'{"train": [], "val": [], "test": []}')
    root = tmp_path / "data"
    rc, out = run_download("imagenet", "StanfordCars", "--root", str(root), "--mirror", mirror.url)
    assert rc == 0
    assert (root / "imagenet" / "classnames.txt").read_text() == "n01440764 tench\n"
    assert "register at https://image-net.org" in out and str(root / "imagenet" / "images" / "train") in out
    assert (root / "stanford_cars" / "split_zhou_StanfordCars.json").exists()
    assert "Stanford Cars links" in out and "manual" in out.split("Summary:")[1]


def test_unknown_name_is_a_clear_error(tmp_path, capsys):
    from datasets.download import main

    assert main(["caltech", "--root", str(tmp_path)]) == 2
    assert "Unknown dataset 'caltech' (do you mean caltech101?)" in capsys.readouterr().err


@pytest.mark.slow
def test_commands_end_to_end(tmp_path, mirror):
    """The download command as users run it (a child process, mirror from the environment), then the check."""
    mini = build("fgvc_aircraft", tmp_path / "src")
    staging = tmp_path / "pack" / "fgvc-aircraft-2013b"
    shutil.copytree(mini.dataset_dir, staging / "data")
    mirror.put("fgvc_aircraft", "fgvc-aircraft-2013b.tar.gz", tar_gz(str(staging), "fgvc-aircraft-2013b"))
    root = tmp_path / "data"
    res = run_cmd([sys.executable, "-m", "datasets.download", "fgvc_aircraft", "--root", str(root)],
                  DATASETS_MIRROR=mirror.url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert os.path.isfile(root / "fgvc_aircraft" / "variants.txt")
    # break one image and remove another: the check reports both, per split
    with open(root / "fgvc_aircraft" / "images_variant_test.txt") as f:
        first, second = [line.split()[0] for line in f][:2]
    os.remove(root / "fgvc_aircraft" / "images" / f"{first}.jpg")
    (root / "fgvc_aircraft" / "images" / f"{second}.jpg").write_bytes(b"broken")
    from datasets.check import main as check_main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert check_main(["--root", str(root), "fgvc_aircraft", "dtd"]) == 1
    out = buf.getvalue()
    assert "fgvc_aircraft" in out and ": incomplete" in out
    assert "train: 6/6 images present" in out and "test : 5/6 images present, 1 unreadable" in out
    assert f"{first}.jpg" in out and "unreadable: Cannot read image" in out and f"{second}.jpg" in out
    assert "dtd" in out and "missing" in out and f"python -m datasets.download dtd --root {root}" in out


def test_check_reports_found_and_missing_split(tmp_path):
    from datasets.check import check_dataset, format_report

    build("sun397", tmp_path)
    build("ucf101", tmp_path, split_file=False)
    found = check_dataset("sun397", str(tmp_path))
    assert found.status == "found" and found.splits["train"].listed == found.splits["train"].present == 12
    assert "split sizes differ from CoOp's published split" in format_report(found)
    incomplete = check_dataset("UCF101", str(tmp_path), quick=True)
    assert incomplete.status == "incomplete" and "split_zhou_UCF101.json is missing" in incomplete.problems[0]
