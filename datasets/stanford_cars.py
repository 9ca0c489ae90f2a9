"""Stanford Cars (CoOp layout): 196 models; class name = meta name with the year moved to the front.

Split paths are relative to the dataset folder itself (cars_train/..., cars_test/...).
"""
import os

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Source, split
from .splits import split_trainval


def year_first(name):
    """'AM General Hummer SUV 2000' -> '2000 AM General Hummer SUV' (CoOp's class names)."""
    words = name.split(" ")
    return " ".join([words[-1]] + words[:-1])


@DATASET_REGISTRY.register()
class StanfordCars(CoOpDataset):
    dataset_dir = "stanford_cars"
    image_folder = ""
    split_file = "split_zhou_StanfordCars.json"
    config_name = "stanford_cars"
    zeroshot_template = "a photo of a {}."
    table_order = 30
    dvp_cls_v = 3
    source = Source(config_name, dataset_dir, (
        split("split_zhou_StanfordCars.json", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
    ), manual="""\
The official Stanford Cars links (ai.stanford.edu/~jkrause/cars) are offline and no other official copy
exists. Get the images and annotations from a copy you trust (e.g. the Kaggle dataset
"jessicali9530/stanford-cars-dataset" plus the devkit and cars_test_annos_withlabels.mat) and arrange:
  {dataset_dir}/cars_train/00001.jpg ...
  {dataset_dir}/cars_test/00001.jpg ...
  {dataset_dir}/devkit/cars_meta.mat, cars_train_annos.mat   (only needed without the split file)
  {dataset_dir}/cars_test_annos_withlabels.mat                (only needed without the split file)
The split file split_zhou_StanfordCars.json is fetched by this command.""")
    descriptions_key = "stanford_cars"
    layout = """\
stanford_cars/
  cars_train/*.jpg, cars_test/*.jpg
  devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat
                                         (the .mat files are needed only to create the split)
  split_zhou_StanfordCars.json           (CoOp's split; created from train (80/20) and test if missing)
"""

    def check_layout(self):
        super().check_layout()
        for folder in ("cars_train", "cars_test"):
            if not os.path.isdir(os.path.join(self.dataset_dir, folder)):
                raise self.missing("StanfordCars image folder", os.path.join(self.dataset_dir, folder))

    def read_annotations(self, image_folder, anno_file, meta_file):
        from scipy.io import loadmat

        annos = loadmat(self.require_file(anno_file))["annotations"][0]
        names = loadmat(self.require_file(meta_file))["class_names"][0]
        entries = []
        for anno in annos:
            label = int(anno["class"][0, 0]) - 1
            impath = os.path.join(self.dataset_dir, image_folder, str(anno["fname"][0]))
            entries.append((impath, label, year_first(str(names[label][0]))))
        return entries

    def create_splits(self, rng):
        meta = os.path.join("devkit", "cars_meta.mat")
        trainval = self.read_annotations("cars_train", os.path.join("devkit", "cars_train_annos.mat"), meta)
        test = self.read_annotations("cars_test", "cars_test_annos_withlabels.mat", meta)
        train, val = split_trainval(trainval, rng)
        return train, val, test
