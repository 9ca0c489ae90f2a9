"""Food-101 (CoOp layout): 101 dishes, one folder each."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Remote, Source, split
from .splits import read_and_split_data


@DATASET_REGISTRY.register()
class Food101(CoOpDataset):
    dataset_dir = "food-101"
    image_folder = "images"
    split_file = "split_zhou_Food101.json"
    config_name = "food101"
    zeroshot_template = "a photo of {}, a type of food."
    table_order = 70
    dvp_cls_v = 2
    source = Source(config_name, dataset_dir, (
        Remote("food-101.tar.gz", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
               md5="85eeb15f3717b99a5da872d97d918f87", unpack={"food-101/*": "."}, provides="images"),
        split("split_zhou_Food101.json", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    ))
    descriptions_key = "food101"
    layout = """\
food-101/
  images/<class>/*.jpg                   (from food-101.tar.gz; meta/ is not needed)
  split_zhou_Food101.json                (CoOp's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng)
