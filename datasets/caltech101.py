"""Caltech101 (CoOp layout): 100 object classes; the background class and Faces_easy are left out."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .splits import read_and_split_data

IGNORED = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(CoOpDataset):
    dataset_dir = "caltech-101"
    image_folder = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    config_name = "caltech101"
    descriptions_key = "caltech101"
    layout = """\
caltech-101/
  101_ObjectCategories/<class>/*.jpg     (from 101_ObjectCategories.tar.gz)
  split_zhou_Caltech101.json             (CoOp's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng, ignored=IGNORED, new_cnames=NEW_CNAMES)
