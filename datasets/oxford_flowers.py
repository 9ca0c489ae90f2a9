"""Oxford Flowers 102 (CoOp layout): class names from cat_to_name.json, labels from imagelabels.mat."""
import json
import os

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import ROBOTS, Remote, Source, split
from .splits import split_groups


@DATASET_REGISTRY.register()
class OxfordFlowers(CoOpDataset):
    dataset_dir = "oxford_flowers"
    image_folder = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    config_name = "oxford_flowers"
    zeroshot_template = "a photo of a {}, a type of flower."
    table_order = 60
    dvp_cls_v = 3
    aliases = ("flowers102", "oxford_flowers102")
    source = Source(config_name, dataset_dir, (
        Remote("102flowers.tgz", f"{ROBOTS}/flowers/102/102flowers.tgz", md5="52808999861908f626f3c1f4e79d11fa",
               unpack={"jpg": "."}, provides="jpg"),
        Remote("imagelabels.mat", f"{ROBOTS}/flowers/102/imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d"),
        split("cat_to_name.json", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0"),
        split("split_zhou_OxfordFlowers.json", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    ))
    descriptions_key = "oxford_flowers"
    layout = """\
oxford_flowers/
  jpg/image_00001.jpg ...                (from 102flowers.tgz)
  imagelabels.mat                        (needed only to create the split)
  cat_to_name.json                       (label 1..102 -> class name; needed only to create the split)
  split_zhou_OxfordFlowers.json          (CoOp's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        from scipy.io import loadmat

        labels = loadmat(self.require_file("imagelabels.mat"))["labels"][0]
        with open(self.require_file("cat_to_name.json")) as f:
            lab2cname = json.load(f)
        groups = {}  # CoOp: grouped by label in order of first appearance, labels made 0-based
        for i, label in enumerate(labels):
            label = int(label)
            if label not in groups:
                groups[label] = (lab2cname[str(label)], [])
            groups[label][1].append(os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg"))
        print("Splitting data into 50% train, 20% val, and 30% test")
        groups = {label - 1: group for label, group in groups.items()}
        return split_groups(groups, rng)
