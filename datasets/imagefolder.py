"""Your own data: a folder with one sub-folder per class (``DATASET.NAME ImageFolder``).

    my_data/                      DATASET.IMAGEFOLDER_DIR (absolute, or relative to DATASET.ROOT)
      cat/*.jpg
      dog/*.jpg
      split_ImageFolder.json      written on first use, then reused
      split_fewshot/              few-shot caches, as for every dataset

Only files with an image extension (.jpg, .png, ...; engine/imageio.py) are listed, and the others are
named in the log; every listed image's header is checked on each load, so an unreadable file stops the run
before training, with its name. Labels follow the sorted folder names and the split is CoOp's 50/20/30
per class, created once from a fixed seed and saved beside the images in the split-json format (delete it
to re-split, e.g. after adding images). The split file records the list of images it was made from: when
images or class folders are added or removed later, loading stops with one error naming the change and
the fix (delete it to re-split); a few-shot cache drawn from an older split is drawn again (said in the
log). Class names are the folder names, or come from
``DATASET.CLASSNAMES_FILE`` (a json ``{folder: name}`` or lines ``<folder> <name>``); names are applied
when loading, so editing that file needs no re-split. The description key (``python -m
descriptions.generate``, description-based trainers) is ``DATASET.DESCRIPTIONS_KEY`` or the folder's name.
"""
import json
import os
import re

from engine import DATASET_REGISTRY
from engine.data_identity import folder_listing_sha256, source_record
from engine.names import is_file_key

from .base import CoOpDataset
from .errors import DatasetNotFoundError, SplitFileError
from .imageio import IMAGE_EXTENSIONS, ImageReadError, is_image_name, unreadable_images
from .splits import SPLITS, class_folders, images_changed, list_images, read_and_split_data, read_split

SPLIT_FILE = "split_ImageFolder.json"
NOT_CLASSES = ("split_fewshot",)


def folder_descriptions_key(folder):
    """The description key an ImageFolder takes from its folder's name (DATASET.DESCRIPTIONS_KEY overrides it)."""
    return os.path.basename(os.path.normpath(folder))


def checked_folder_descriptions_key(folder):
    """folder_descriptions_key, refused with where it came from when it cannot name description files."""
    key = folder_descriptions_key(folder)
    if is_file_key(key):
        return key
    suggestion = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_.-") or "my_dataset"
    raise ValueError(f"The description key {key!r} comes from the name of the image folder "
                     f"(DATASET.IMAGEFOLDER_DIR {folder}) and cannot name description files (letters, "
                     f"digits, '_', '-' or '.'). Set DATASET.DESCRIPTIONS_KEY to override it, e.g. "
                     f"DATASET.DESCRIPTIONS_KEY {suggestion}.")


def read_renames(path):
    """A class renaming file -> {folder: class name} (json object, or '<folder> <name>' lines)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DATASET.CLASSNAMES_FILE not found: {path}")
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as err:
            raise SplitFileError(f"{path} is not valid json ({err}).") from None
        if not isinstance(mapping, dict):
            raise SplitFileError(f"{path} must be a json object {{folder: class name}}.")
        return {str(k): str(v) for k, v in mapping.items()}
    mapping = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.strip().split(None, 1)
        if len(fields) != 2:
            raise SplitFileError(f"{path}:{lineno}: expected '<folder> <class name>', got {line!r}")
        mapping[fields[0]] = fields[1].strip()
    return mapping


@DATASET_REGISTRY.register()
class ImageFolder(CoOpDataset):
    dataset_dir = ""
    image_folder = ""
    split_file = SPLIT_FILE
    config_name = "imagefolder"
    descriptions_key = ""
    # each folder is its own table column, named by its path (resolved against DATASET.ROOT)
    column_key = {"key": "IMAGEFOLDER_DIR", "default": "", "path": True}
    layout = """\
<DATASET.IMAGEFOLDER_DIR>/
  <class name>/*.jpg|png|...             (one folder per class, at least 4 images each)
  split_ImageFolder.json                 (written on first use: 50/20/30 per class)
"""

    def configure(self, cfg):
        folder = os.path.expanduser(cfg.DATASET.IMAGEFOLDER_DIR)
        if not folder:
            raise ValueError("DATASET.NAME is ImageFolder but DATASET.IMAGEFOLDER_DIR is empty: set it to a folder "
                             "with one sub-folder of images per class (absolute, or relative to DATASET.ROOT).")
        self.dataset_dir = self.image_dir = os.path.join(self.root, folder)
        self.split_path = os.path.join(self.dataset_dir, SPLIT_FILE)
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.descriptions_key = cfg.DATASET.DESCRIPTIONS_KEY or folder_descriptions_key(self.dataset_dir)
        self.renames, self.classnames_path = {}, ""
        if cfg.DATASET.CLASSNAMES_FILE:
            self.classnames_path = os.path.join(self.dataset_dir, os.path.expanduser(cfg.DATASET.CLASSNAMES_FILE))
            self.renames = read_renames(self.classnames_path)

    def check_layout(self):
        if not os.path.isdir(self.dataset_dir):
            raise DatasetNotFoundError(f"DATASET.IMAGEFOLDER_DIR not found: {self.dataset_dir}\n\nExpected layout:\n"
                                       f"{self.layout}")
        folders = class_folders(self.dataset_dir, ignored=NOT_CLASSES)
        if len(folders) < 2:
            raise DatasetNotFoundError(f"{self.dataset_dir} has {len(folders)} class folder(s); an image folder "
                                       f"needs at least 2.\n\nExpected layout:\n{self.layout}")
        unknown = sorted(set(self.renames) - set(folders))
        if unknown:
            print(f"Warning: the class names file names folders that do not exist in {self.dataset_dir}: "
                  f"{', '.join(unknown[:5])}")

    def split_files(self):
        """The split file, and the class names file (edited names change the numbers: the done check sees it)."""
        return super().split_files() + ([self.classnames_path] if self.classnames_path else [])

    def source_records(self, found=()):
        """Also the folder's file listing: images added or removed since make a result not done."""
        listing = source_record("listing", self.dataset_dir, self.root, ignored=list(NOT_CLASSES),
                                suffixes=list(IMAGE_EXTENSIONS),  # a notes file beside the images is no change
                                sha256=folder_listing_sha256(self.dataset_dir, NOT_CLASSES, IMAGE_EXTENSIONS))
        return super().source_records(found) + [listing]

    def classname(self, folder):
        return self.renames.get(folder, folder)

    def read_splits(self):
        if not os.path.exists(self.split_path):
            return None
        splits = read_split(self.split_path, self.image_dir)
        # names come from the folder of each image and the current renaming file
        out = {}
        for name in SPLITS:
            out[name] = [(p, y, self.classname(os.path.relpath(p, self.image_dir).split(os.sep)[0]))
                         for p, y, _ in splits[name]]
        why = images_changed(self.split_path, listed_images(self.dataset_dir), self.image_dir)
        if why:
            raise SplitFileError(f"{why}. The split no longer describes the folder: delete {self.split_path} to "
                                 f"split it again (each run records the split it used), or restore the images.")
        listed = {os.path.relpath(p, self.image_dir).split(os.sep)[0] for p, _, _ in out["train"]}
        extra = sorted(set(class_folders(self.dataset_dir, ignored=NOT_CLASSES)) - listed)
        if extra:
            print(f"Warning: class folders {extra[:5]} are not in {self.split_path}; delete that file to split again.")
        return out

    def create_splits(self, rng):
        folders = class_folders(self.dataset_dir, ignored=NOT_CLASSES)
        report_non_images(self.image_dir, folders)
        return read_and_split_data(self.image_dir, rng, folders=folders, keep=is_image_name,
                                   new_cnames={f: self.classname(f) for f in folders})

    def load_splits(self):
        splits = super().load_splits()
        check_images([d.impath for items in splits for d in items], self.split_path)
        return splits


def listed_images(folder):
    """``[(path, class folder)]``: the files the loader splits (image extensions, in the class folders)."""
    entries = []
    for name in class_folders(folder, ignored=NOT_CLASSES):
        entries += [(os.path.join(folder, name, f), name)
                    for f in list_images(os.path.join(folder, name), keep=is_image_name)]
    return entries


def report_non_images(image_dir, folders):
    """Say which files of the class folders are left out for not having an image extension."""
    skipped = sorted(os.path.join(f, name) for f in folders for name in os.listdir(os.path.join(image_dir, f))
                     if not name.startswith(".") and os.path.isfile(os.path.join(image_dir, f, name))
                     and not is_image_name(name))
    if skipped:
        more = f", ... ({len(skipped) - 5} more)" if len(skipped) > 5 else ""
        print(f"Note: {len(skipped)} file(s) without an image extension are not images of a class and are left "
              f"out: {', '.join(skipped[:5])}{more}")


def check_images(paths, split_path):
    """Fail before training when a listed file is not a readable image (a header check: no decoding)."""
    bad = unreadable_images(paths)
    if bad:
        listed = "; ".join(f"{path} ({why})" for path, why in bad[:5])
        more = f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ImageReadError(f"{len(bad)} of the {len(paths)} images listed in {split_path} cannot be read: "
                             f"{listed}{more}. Remove or replace those files, then delete {split_path} so that "
                             f"the folder is split again.")
