"""NWPU-RESISC45 in the layout of the VR papers (BlackVIP, AttrVR, DVP): 45 scene classes."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Remote, Source, split
from .splits import read_and_split_data


@DATASET_REGISTRY.register()
class Resisc45(CoOpDataset):
    dataset_dir = "resisc45"
    image_folder = "NWPU-RESISC45"
    split_file = "split_mlai_Resisc45.json"
    config_name = "resisc45"
    zeroshot_template = "a satellite photo of {}."  # this project's: CoOp has none
    table_order = 110
    dvp_cls_v = 3
    aliases = ("nwpu_resisc45",)
    source = Source(config_name, dataset_dir, (
        Remote("NWPU-RESISC45.zip", "https://hf.co/datasets/isaaccorley/resisc45/resolve/"
               "883edc0eee77b2c84225472f10f126e3ed83fa6e/NWPU-RESISC45.zip",
               sha256="beeecd0b63656290ae6d65cf7763185b0c1c4c54a753ef8088d6fba3faaf1f53",
               unpack={"NWPU-RESISC45": "."}, provides="NWPU-RESISC45"),
        split("split_mlai_Resisc45.json", "1QTThkyN-p58hAxN7wpBntO4CncTf9qtF"),
    ))
    descriptions_key = "resisc45"
    layout = """\
resisc45/
  NWPU-RESISC45/<class>/*.jpg            (from NWPU-RESISC45.rar / .zip)
  split_mlai_Resisc45.json               (BlackVIP's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng)
