"""SUN397 (CoOp layout): 397 scenes; '/a/apartment_building/outdoor' is named 'outdoor apartment_building'."""
import os

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Remote, Source, split
from .splits import split_trainval


def sun_classname(folder):
    """'a/apartment_building/outdoor' -> 'outdoor apartment_building' (drop the letter, reverse the rest)."""
    return " ".join(folder.split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(CoOpDataset):
    dataset_dir = "sun397"
    image_folder = "SUN397"
    split_file = "split_zhou_SUN397.json"
    config_name = "sun397"
    zeroshot_template = "a photo of a {}."
    table_order = 90
    dvp_cls_v = 3
    source = Source(config_name, dataset_dir, (
        Remote("SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
               md5="8ca2778205c41d23104230ba66911c7a", unpack={"SUN397": "."}, provides="SUN397"),
        Remote("Partitions.zip", "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip",
               unpack={"**/*.txt": "."}, provides="ClassName.txt"),
        split("split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    ))
    descriptions_key = "sun397"
    layout = """\
sun397/
  SUN397/<letter>/<class>[/<sub>]/*.jpg  (from SUN397.tar.gz)
  ClassName.txt, Training_01.txt, Testing_01.txt
                                         (from Partitions.zip; needed only to create the split)
  split_zhou_SUN397.json                 (CoOp's split; created from Training_01 (80/20) and Testing_01 if missing)
"""

    def read_list(self, cname2lab, text_file):
        entries = []
        with open(self.require_file(text_file)) as f:
            for line in f:
                imname = line.strip()[1:]  # drop the leading "/"
                if not imname:
                    continue
                folder = os.path.dirname(imname)
                entries.append((os.path.join(self.image_dir, imname), cname2lab[folder], sun_classname(folder)))
        return entries

    def create_splits(self, rng):
        with open(self.require_file("ClassName.txt")) as f:
            folders = [line.strip()[1:] for line in f if line.strip()]
        cname2lab = {c: i for i, c in enumerate(folders)}
        trainval = self.read_list(cname2lab, "Training_01.txt")
        test = self.read_list(cname2lab, "Testing_01.txt")
        train, val = split_trainval(trainval, rng)
        return train, val, test
