"""ImageNet-V2, ImageNet-Sketch, ImageNet-A and ImageNet-R (CoOp's layouts): test-only datasets with
ImageNet's class names, for domain generalisation (train on ImageNet, test here).

Each folder holds a copy of ImageNet's ``classnames.txt`` (CoOp's file, ``<wnid> <name>`` per line).
ImageNet-V2 names its class folders ``0`` ... ``999`` (the position in classnames.txt; the label is
that number); Sketch, A and R name them by wnid and the label is the rank of the sorted folder, as in
CoOp. A and R cover 200 of the 1,000 classes, so they are 200-class datasets (labels 0-199) evaluated
on those classes only, as CoOp does. Every image is a test image (train_x is the same list, there is
no val set and no few-shot step: nothing is written into these folders).

Classes must be ImageNet's: a class folder that is not in classnames.txt, or a classnames.txt that
differs from ``<root>/imagenet/classnames.txt`` (when ImageNet is there too), is an error naming the
first mismatch. The descriptions are ImageNet's (key ``I``). Each class's identity is its WordNet id
(``class_id``, engine/class_ids.py): what matches A's and R's classes to the rows of a head trained on ImageNet.
"""
import os

from engine import DATASET_REGISTRY, DatasetBase

from .base import CoOpDataset, data_root
from .errors import SplitFileError
from .imagenet import ImageNet, read_classnames
from .sources import HENDRYCKS, IMAGENET_CLASSNAMES, Remote, Source
from .splits import class_folders, list_images, to_datums
from .subsample import subsample_classes

CLASSNAMES = "classnames.txt"


class ImageNetVariant(CoOpDataset):
    """The shared loader: ``image_folder`` holds one folder per class (see the module docstring)."""

    descriptions_key = ImageNet.descriptions_key
    zeroshot_template = ImageNet.zeroshot_template
    dvp_cls_v = ImageNet.dvp_cls_v  # trained on ImageNet; evaluated here
    test_only = True  # train.py refuses to train on it
    numbered_folders = False  # ImageNet-V2: folders 0..999 instead of wnids
    class_id_kind = ImageNet.class_id_kind  # the WordNet id (engine/class_ids.py), as ImageNet's

    def class_id(self, impath):
        """The WordNet id of an image's class: its folder, or (ImageNet-V2) the wnid on that line of classnames.txt."""
        folder = os.path.basename(os.path.dirname(impath))
        return self.wnids[int(folder)] if self.numbered_folders else folder

    def __init__(self, cfg):
        self.set_paths(data_root(cfg))
        self.check_layout()
        test = to_datums(self.read_splits()["test"], self.split_source())
        (test,) = subsample_classes(test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        DatasetBase.__init__(self, train_x=test, val=[], test=test)
        self.data_sources = self.source_records()
        self.warn_duplicate_names()

    def split_files(self):
        return [os.path.join(self.dataset_dir, CLASSNAMES)]

    def split_source(self):
        return f"the class folders of {self.image_dir}"

    def read_class_names(self):
        """{wnid: name} of this folder's classnames.txt, checked against ImageNet's when present."""
        names = read_classnames(self.require_file(CLASSNAMES))
        reference = os.path.join(self.root, ImageNet.dataset_dir, CLASSNAMES)
        if os.path.isfile(reference):
            check_same_classes(names, read_classnames(reference), self.require_file(CLASSNAMES),
                               reference)
        return names

    def read_splits(self):
        """``{"test": entries}``: every image of every class folder."""
        names = self.read_class_names()
        wnids = self.wnids = list(names)
        folders = class_folders(self.image_dir)  # folders only: CoOp's README.txt is left out
        entries = []
        for rank, folder in enumerate(folders):
            if self.numbered_folders:
                if not folder.isdigit() or int(folder) >= len(wnids):
                    raise SplitFileError(
                        f"{type(self).__name__}: class folder {os.path.join(self.image_dir, folder)} is not "
                        f"one of ImageNet's classes: folders must be named 0 ... {len(wnids) - 1} (the line "
                        f"of the class in {CLASSNAMES}).")
                label, wnid = int(folder), wnids[int(folder)]
            else:
                if folder not in names:
                    raise SplitFileError(
                        f"{type(self).__name__}: class folder {os.path.join(self.image_dir, folder)} is not "
                        f"one of ImageNet's classes (no line '{folder} <name>' in "
                        f"{os.path.join(self.dataset_dir, CLASSNAMES)}).")
                label, wnid = rank, folder
            entries += [(os.path.join(self.image_dir, folder, im), label, names[wnid])
                        for im in list_images(os.path.join(self.image_dir, folder))]
        return {"test": entries}


def check_same_classes(names, reference, path, reference_path):
    """Raise naming the first line where a variant's classnames.txt differs from ImageNet's."""
    ours, theirs = list(names.items()), list(reference.items())
    for line, (a, b) in enumerate(zip(ours, theirs, strict=False), 1):
        if a != b:
            raise SplitFileError(
                f"{path} line {line} is '{a[0]} {a[1]}', but ImageNet's {reference_path} has "
                f"'{b[0]} {b[1]}': the classes must be ImageNet's. Copy ImageNet's {CLASSNAMES} there.")
    if len(ours) != len(theirs):
        line = min(len(ours), len(theirs)) + 1
        longer, which = (ours, path) if len(ours) > len(theirs) else (theirs, reference_path)
        raise SplitFileError(
            f"{path} has {len(ours)} classes, ImageNet's {reference_path} has {len(theirs)} (first "
            f"difference: line {line}, '{' '.join(longer[line - 1])}' only in {which}). Copy ImageNet's "
            f"{CLASSNAMES} there.")


def _layout(folder, images, note):
    return (f"{folder}/\n  {images}/<class>/*.jpg            ({note})\n"
            f"  {CLASSNAMES}                       (a copy of imagenet/{CLASSNAMES}, CoOp's class names)\n")


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    dataset_dir = "imagenetv2"
    image_folder = "imagenetv2-matched-frequency-format-val"
    config_name = "imagenetv2"
    table_order = 130
    source = Source(config_name, dataset_dir, (
        Remote("imagenetv2-matched-frequency.tar.gz", "https://huggingface.co/datasets/vaishaal/ImageNetV2/"
               "resolve/main/imagenetv2-matched-frequency.tar.gz",
               unpack={"imagenetv2-matched-frequency-format-val": "."},
               provides="imagenetv2-matched-frequency-format-val"),
        IMAGENET_CLASSNAMES,
    ))
    numbered_folders = True
    layout = _layout(dataset_dir, image_folder, "matched-frequency test set; folders 0 ... 999, the "
                     "line of the class in classnames.txt")


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    dataset_dir = "imagenet-sketch"
    image_folder = "images"
    config_name = "imagenet_sketch"
    table_order = 140
    source = Source(config_name, dataset_dir, (
        IMAGENET_CLASSNAMES,
    ), manual="""\
ImageNet-Sketch has no stable direct link. Get it from the authors' page
https://github.com/HaohanWang/ImageNet-Sketch (Google Drive, or the Kaggle dataset
"wanghaohan/imagenetsketch"), unpack it and move its class folders (sketch/<wnid>/*.JPEG) to
  {dataset_dir}/images/<wnid>/
classnames.txt (ImageNet's class names, CoOp's file) is fetched by this command.""")
    layout = _layout(dataset_dir, image_folder, "1000 folders named by wnid, n01440764 ...")


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    dataset_dir = "imagenet-adversarial"
    image_folder = "imagenet-a"
    config_name = "imagenet_a"
    table_order = 150
    source = Source(config_name, dataset_dir, (
        Remote("imagenet-a.tar", f"{HENDRYCKS}/imagenet-a.tar", unpack={"imagenet-a": "."},
               provides="imagenet-a"),
        IMAGENET_CLASSNAMES,
    ))
    layout = _layout(dataset_dir, image_folder, "200 folders named by wnid: a 200-class subset")


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    dataset_dir = "imagenet-rendition"
    image_folder = "imagenet-r"
    config_name = "imagenet_r"
    table_order = 160
    source = Source(config_name, dataset_dir, (
        Remote("imagenet-r.tar", f"{HENDRYCKS}/imagenet-r.tar", unpack={"imagenet-r": "."},
               provides="imagenet-r"),
        IMAGENET_CLASSNAMES,
    ))
    layout = _layout(dataset_dir, image_folder, "200 folders named by wnid: a 200-class subset")
