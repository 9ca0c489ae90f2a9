"""ImageNet (CoOp layout): train on images/train, test (and val) on images/val; no split json.

Class names come from CoOp's ``classnames.txt`` (CLIP's names: "<wnid> <name>" per line). Two names
occur twice there ("missile" for n03773504 and n04008634, "sunglasses" for n04355933 and n04356056), so
the loader has 1000 labels but 998 distinct class names, and the published description file ``I_des.json``
has 998 keys: both labels of a shared name use the same descriptions (``lab2cname`` maps each label to its
name; look descriptions up by name). The scanned lists are cached in ``preprocessed.pkl``
(``{"train": [Datum], "test": [Datum]}``, CoOp's file, readable by Dassl too); the few-shot cache holds
``{"train": ...}`` only.
"""
import os
from collections import OrderedDict

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .errors import SplitFileError, find_missing, missing_images_error
from .sources import IMAGENET_CLASSNAMES, Source
from .splits import class_folders, list_images, to_datums


def read_classnames(path):
    """classnames.txt -> OrderedDict {wnid: class name}."""
    classnames = OrderedDict()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.strip().split(" ")
            if not line.strip():
                continue
            if len(fields) < 2:
                raise SplitFileError(f"{path}:{lineno}: expected '<wnid> <class name>', got {line!r}")
            classnames[fields[0]] = " ".join(fields[1:])
    return classnames


@DATASET_REGISTRY.register()
class ImageNet(CoOpDataset):
    dataset_dir = "imagenet"
    image_folder = "images"
    split_file = ""
    config_name = "imagenet"
    zeroshot_template = "a photo of a {}."
    table_order = 120
    dvp_cls_v = 3  # not in the DVP paper
    source = Source(config_name, dataset_dir, (
        IMAGENET_CLASSNAMES,
    ), manual="""\
ImageNet (ILSVRC2012) needs an account: register at https://image-net.org, download
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, then
  - extract the train archive and each per-class tar inside it into {dataset_dir}/images/train/<wnid>/
  - extract the val archive and sort its 50,000 images into {dataset_dir}/images/val/<wnid>/
    (e.g. with the widely used valprep.sh script)
If you already have ImageNet elsewhere, symlink its train/ and val/ folders into {dataset_dir}/images/.
classnames.txt (CoOp's class names) is fetched by this command.""")
    descriptions_key = "I"
    fewshot_val = False
    class_id_kind = "wnid"  # engine/class_ids.py: the WordNet id, the name of the class folder

    def class_id(self, impath):
        """The WordNet id of an image's class: its folder (images/{train,val}/<wnid>/...)."""
        return os.path.basename(os.path.dirname(impath))
    layout = """\
imagenet/
  images/train/<wnid>/*.JPEG             (ILSVRC2012 train, 1000 folders n01440764, ...)
  images/val/<wnid>/*.JPEG               (ILSVRC2012 val, sorted into the same 1000 folders)
  classnames.txt                         (CoOp's file: "<wnid> <class name>" per line)
  preprocessed.pkl                       (written on first use)
"""

    @property
    def preprocessed(self):
        return os.path.join(self.dataset_dir, "preprocessed.pkl")

    def split_source(self):
        return f"{self.image_dir}/{{train,val}}"

    def scan(self, classnames, split_dir):
        """Entries of images/<split_dir>: label = rank of the sorted wnid folder."""
        folder = os.path.join(self.image_dir, split_dir)
        if not os.path.isdir(folder):
            raise self.missing("ImageNet image folder", folder)
        entries = []
        for label, wnid in enumerate(class_folders(folder)):
            if wnid not in classnames:
                raise SplitFileError(f"Folder {os.path.join(folder, wnid)} is not listed in "
                                     f"{os.path.join(self.dataset_dir, 'classnames.txt')}.")
            entries += [(os.path.join(folder, wnid, im), label, classnames[wnid])
                        for im in list_images(os.path.join(folder, wnid))]
        return entries

    def split_files(self):
        """classnames.txt (the split itself is the image folders, listed once into preprocessed.pkl)."""
        path = os.path.join(self.dataset_dir, "classnames.txt")
        return [path] if os.path.isfile(path) else []

    def read_splits(self):
        """``{"train", "test"}`` entries from preprocessed.pkl, or from the folders when it is absent."""
        if os.path.exists(self.preprocessed):
            data = self.read_preprocessed()
            return {k: [(d.impath, d.label, d.classname) for d in data[k]] for k in ("train", "test")}
        classnames = read_classnames(self.require_file("classnames.txt"))
        return {"train": self.scan(classnames, "train"), "test": self.scan(classnames, "val")}

    def read_preprocessed(self):
        from engine import load_fewshot_cache

        data = load_fewshot_cache(self.preprocessed)
        if not isinstance(data, dict) or "train" not in data or "test" not in data:
            raise SplitFileError(f"{self.preprocessed} must hold {{'train': [...], 'test': [...]}}; delete it "
                                 f"and it is created again from the image folders.")
        return data

    def load_splits(self):
        if os.path.exists(self.preprocessed):
            data = self.read_preprocessed()
            train, test = data["train"], data["test"]
            # 1.3M files are too many to stat on every start; one image per class catches a moved root
            sample = list({d.label: d.impath for d in train + test}.values())
            missing = find_missing(sample)
            if missing:
                raise missing_images_error(
                    missing, len(sample), f"{self.preprocessed} (one image checked per class)",
                    hint=f"It stores absolute paths; delete {self.preprocessed} and it is created again.")
        else:
            from engine import save_fewshot_cache

            splits = self.read_splits()
            train = to_datums(splits["train"], self.split_source())
            test = to_datums(splits["test"], self.split_source())
            save_fewshot_cache(self.preprocessed, {"train": train, "test": test})
        return train, test, test
