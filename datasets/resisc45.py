"""NWPU-RESISC45 in the layout of the VR papers (BlackVIP, AttrVR, DVP): 45 scene classes."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .splits import read_and_split_data


@DATASET_REGISTRY.register()
class Resisc45(CoOpDataset):
    dataset_dir = "resisc45"
    image_folder = "NWPU-RESISC45"
    split_file = "split_mlai_Resisc45.json"
    config_name = "resisc45"
    descriptions_key = "resisc45"
    layout = """\
resisc45/
  NWPU-RESISC45/<class>/*.jpg            (from NWPU-RESISC45.rar / .zip)
  split_mlai_Resisc45.json               (BlackVIP's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng)
