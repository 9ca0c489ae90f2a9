"""Check a data root: which datasets are found, missing or incomplete, and why.

    python -m datasets.check --root DATA [NAME ...] [--quick]
    python -m datasets.check --root DATA digits [--shift SHIFT]          (default: every built shift)
    python -m datasets.check --root DATA imagefolder --folder MY_IMAGES  (DATASET.IMAGEFOLDER_DIR)

What it verifies, per dataset (docs/data-identity.md):

- the dataset folder and its split file(s) exist (else: missing / incomplete, with the command that fixes it);
- every image a split lists exists and (unless ``--quick``) decodes; each split's size is shown beside
  CoOp's published one;
- a split this toolkit made (ImageFolder's ``split_ImageFolder.json``) still matches the images on disk:
  images or class folders added or removed since it was made make the dataset incomplete, with the fix;
- each few-shot cache (``split_fewshot/shot_K-seed_S.pkl``) was drawn from the current split: a cache
  drawn from another split (the split file was replaced or re-made since), or recording no split
  (written by CoOp or older code), is listed; runs draw such a cache again and overwrite it.

The exit status is 0 only when every checked dataset is found.
"""
import argparse
import contextlib
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace

from engine.data_identity import split_sha256
from engine.fewshot_cache import read_cache_identity

from .catalog import find_loader, public_names
from .digits import Digits
from .digits_data import SHIFTS, shift_dir
from .errors import SplitFileError, download_command
from .imagefolder import ImageFolder, listed_images
from .imageio import read_image
from .splits import SPLITS
from .writable import fallback_path

LOCAL = {"digits": Digits, "imagefolder": ImageFolder}  # built here / the user's own folder

# train / val / test sizes of CoOp's split files (CoOp paper, Table 1; ImageNet tests on its val set)
COOP_SIZES = {
    "caltech101": (4128, 1649, 2465), "dtd": (2820, 1128, 1692), "eurosat": (13500, 5400, 8100),
    "fgvc_aircraft": (3334, 3333, 3333), "food101": (50500, 20200, 30300), "oxford_flowers": (4093, 1633, 2463),
    "oxford_pets": (2944, 736, 3669), "stanford_cars": (6509, 1635, 8041), "sun397": (15880, 3970, 19850),
    "ucf101": (7639, 1898, 3783), "imagenet": (1281167, None, 50000),
    # test-only ImageNet variants (their published sizes)
    "imagenetv2": (None, None, 10000), "imagenet_sketch": (None, None, 50889),
    "imagenet_a": (None, None, 7500), "imagenet_r": (None, None, 30000),
}


@dataclass
class SplitReport:
    listed: int
    present: int
    missing: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)  # (path, reason)


@dataclass
class Report:
    name: str
    dataset_dir: str
    status: str = "found"  # found | missing | incomplete
    problems: list = field(default_factory=list)
    splits: dict = field(default_factory=dict)  # split name -> SplitReport
    notes: list = field(default_factory=list)


def _readable(path):
    try:
        read_image(path)
    except Exception as err:
        return str(err).split(". The file")[0]
    return None


def check_dataset(name, root, quick=False, workers=8):
    """Inspect public dataset ``name`` under ``root`` without loading it; returns a Report."""
    cls = find_loader(name)
    return check_located(cls.locate(root), root, quick, workers, fix=download_command(cls.config_name, root))


def check_digits(root, shifts=(), quick=False, workers=8):
    """Reports for the Digits shift folders under ``root`` (default: every one that is built)."""
    built = [s for s in SHIFTS if os.path.isdir(shift_dir(root, s))]
    reports = []
    for shift in shifts or built or ["none"]:
        loader = Digits.locate(root)
        loader.shift = shift
        loader.set_paths(loader.root)
        reports.append(check_located(loader, root, quick, workers, name=f"digits ({shift})",
                                     fix="train.py builds it on first use from scikit-learn (no download)"))
    return reports


def check_imagefolder(root, folder, quick=False, workers=8):
    """Report for an ImageFolder (``folder`` as DATASET.IMAGEFOLDER_DIR: absolute or under ``root``)."""
    loader = ImageFolder.locate(root)
    loader.configure(SimpleNamespace(DATASET=SimpleNamespace(IMAGEFOLDER_DIR=folder, DESCRIPTIONS_KEY="",
                                                             CLASSNAMES_FILE="")))
    return check_located(loader, root, quick, workers,
                         fix="create it: one sub-folder of images per class (datasets/imagefolder.py)",
                         unsplit_ok=True)


def _images_by_class(loader):
    """{"all": [(path, class)]} of an image folder without a split file yet."""
    return {"all": listed_images(loader.dataset_dir)}


def _get(fix):
    return f"get it with: {fix}" if fix.startswith("python -m datasets.download") else fix


def check_located(loader, root, quick, workers, fix, name=None, unsplit_ok=False):
    """The Report of a loader whose paths are set; ``fix`` is what a missing dataset needs."""
    report = Report(name or loader.config_name, loader.dataset_dir)
    if not os.path.isdir(loader.dataset_dir):
        report.status = "missing"
        report.problems.append(f"no folder {loader.dataset_dir}; {_get(fix)}")
        return report
    try:
        loader.check_layout()
        with contextlib.redirect_stdout(io.StringIO()):  # the loaders' "Reading split from ..." lines
            splits = loader.read_splits()
    except SplitFileError as err:  # its message names the fix
        report.status = "incomplete"
        report.problems.append(str(err).split("\n")[0])
        return report
    except (FileNotFoundError, ValueError) as err:
        report.status = "incomplete"
        report.problems.append(str(err).split("\n")[0] + f"  (fix: {fix})")
        return report
    if splits is None and unsplit_ok:
        report.notes.append(f"no split file yet: {loader.split_path} is written on first use (50/20/30 per class)")
        splits = _images_by_class(loader)
    elif splits is None:
        report.status = "incomplete"
        report.problems.append(f"split file {loader.split_path} is missing: the loader would create a new split, "
                               f"not CoOp's; {_get(fix)}")
        return report
    for split_name, entries in splits.items():
        paths = [e[0] for e in entries]
        missing = [p for p in paths if not os.path.isfile(p)]
        sr = SplitReport(listed=len(paths), present=len(paths) - len(missing), missing=missing)
        if not quick:
            gone = set(missing)
            present = [p for p in paths if p not in gone]
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for path, reason in zip(present, pool.map(_readable, present), strict=False):
                    if reason:
                        sr.unreadable.append((path, reason))
        report.splits[split_name] = sr
        if sr.missing or sr.unreadable:
            report.status = "incomplete"
    if splits is not None and "all" not in splits:
        report.notes += stale_caches(loader, splits)
    expected = COOP_SIZES.get(loader.config_name)
    if expected:
        listed = {"train": expected[0], "val": expected[1], "test": expected[2]}
        differ = [f"{k} {report.splits[k].listed} vs {v}" for k, v in listed.items()
                  if v is not None and k in report.splits and report.splits[k].listed != v]
        if differ:
            report.notes.append("split sizes differ from CoOp's published split (" + ", ".join(differ) + ")")
    return report


def stale_caches(loader, splits):
    """Notes on the few-shot caches of ``loader`` that were not drawn from ``splits`` (the current split)."""
    # the loader hashes (train, val, test) as loaded: ImageNet's val is its test
    parts = [splits.get(name, splits.get("test", [])) for name in SPLITS]
    current = split_sha256(parts, loader.dataset_dir)
    folders = [os.path.join(loader.dataset_dir, "split_fewshot"), fallback_path(loader.dataset_dir, "split_fewshot")]
    notes = []
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in sorted(f for f in os.listdir(folder) if f.endswith(".pkl")):
            path = os.path.join(folder, name)
            try:
                identity = read_cache_identity(path)
            except Exception as err:
                notes.append(f"few-shot cache {path} cannot be read ({type(err).__name__}); delete it")
                continue
            if identity is None:
                notes.append(f"few-shot cache {path} records no split it was drawn from (written by CoOp or older "
                             f"code): runs draw it again from the current split and overwrite it")
            elif identity.get("split_sha256") != current:
                notes.append(f"few-shot cache {path} does not match its split: it was drawn from another split "
                             f"than {loader.split_source()}; runs draw it again and overwrite it")
    return notes


def format_report(report):
    lines = [f"== {report.name} ({report.dataset_dir}): {report.status}"]
    lines += [f"   {p}" for p in report.problems]
    for split_name, sr in report.splits.items():
        line = f"   {split_name:5s}: {sr.present}/{sr.listed} images present"
        if sr.unreadable:
            line += f", {len(sr.unreadable)} unreadable"
        lines.append(line)
        if sr.missing:
            lines.append(f"     missing ({len(sr.missing)}): " + ", ".join(sr.missing[:3]) +
                         (" ..." if len(sr.missing) > 3 else ""))
        for _path, reason in sr.unreadable[:3]:
            lines.append(f"     unreadable: {reason}")
        if len(sr.unreadable) > 3:
            lines.append(f"     ... and {len(sr.unreadable) - 3} more unreadable")
    lines += [f"   note: {n}" for n in report.notes]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m datasets.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"dataset(s) to check (default: all public ones): {', '.join(public_names())}; "
                             f"also digits "
                             f"(the built shifts, or --shift) and imagefolder (with --folder)")
    parser.add_argument("--root", required=True, help="data root (DATASET.ROOT)")
    parser.add_argument("--shift", action="append", choices=SHIFTS,
                        help="digits: the shift folder to check (DATASET.DIGITS_SHIFT; repeatable)")
    parser.add_argument("--folder", help="imagefolder: DATASET.IMAGEFOLDER_DIR (absolute, or relative to --root)")
    parser.add_argument("--quick", action="store_true", help="only check that images exist (do not decode them)")
    parser.add_argument("--workers", type=int, default=8, help="threads decoding images")
    args = parser.parse_args(argv)
    try:
        names = [n.lower() if n.lower() in LOCAL else find_loader(n).config_name
                 for n in (args.names or public_names())]
        if "imagefolder" in names and not args.folder:
            raise ValueError("imagefolder needs --folder DIR (the DATASET.IMAGEFOLDER_DIR of your config)")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reports = []
    for name in names:
        if name == "digits":
            reports += check_digits(args.root, args.shift or (), args.quick, args.workers)
        elif name == "imagefolder":
            reports.append(check_imagefolder(args.root, args.folder, args.quick, args.workers))
        else:
            reports.append(check_dataset(name, args.root, args.quick, args.workers))
    for report in reports:
        print(format_report(report))
    print("\nSummary: " + ", ".join(f"{r.name} {r.status}" for r in reports))
    return 0 if all(r.status == "found" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
