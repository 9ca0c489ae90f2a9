"""Describable Textures (CoOp layout): 47 texture classes, one folder each."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import ROBOTS, Remote, Source, split
from .splits import read_and_split_data


@DATASET_REGISTRY.register()
class DescribableTextures(CoOpDataset):
    dataset_dir = "dtd"
    image_folder = "images"
    split_file = "split_zhou_DescribableTextures.json"
    config_name = "dtd"
    zeroshot_template = "{} texture."
    table_order = 40
    dvp_cls_v = 3
    source = Source(config_name, dataset_dir, (
        Remote("dtd-r1.0.1.tar.gz", f"{ROBOTS}/dtd/download/dtd-r1.0.1.tar.gz", md5="fff73e5086ae6bdbea199a49dfb8a4c1",
               unpack={"dtd/*": "."}, provides="images"),
        split("split_zhou_DescribableTextures.json", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    ))
    descriptions_key = "dtd"
    layout = """\
dtd/
  images/<class>/*.jpg                   (from dtd-r1.0.1.tar.gz; imdb/ and labels/ are not needed)
  split_zhou_DescribableTextures.json    (CoOp's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng)
