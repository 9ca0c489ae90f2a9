"""Caltech101 (CoOp layout): 100 object classes; the background class and Faces_easy are left out."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Remote, Source, split
from .splits import read_and_split_data

IGNORED = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(CoOpDataset):
    dataset_dir = "caltech-101"
    image_folder = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    config_name = "caltech101"
    zeroshot_template = "a photo of a {}."
    table_order = 20
    dvp_cls_v = 3
    source = Source(config_name, dataset_dir, (
        Remote("caltech-101.zip", "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
               md5="3138e1922a9193bfa496528edbbc45d0",
               unpack={"caltech-101/101_ObjectCategories.tar.gz": "."}, provides="101_ObjectCategories"),
        split("split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    ))
    descriptions_key = "caltech101"
    layout = """\
caltech-101/
  101_ObjectCategories/<class>/*.jpg     (from 101_ObjectCategories.tar.gz)
  split_zhou_Caltech101.json             (CoOp's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng, ignored=IGNORED, new_cnames=NEW_CNAMES)
