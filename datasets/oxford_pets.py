"""Oxford-IIIT Pets (CoOp layout): 37 breeds; class name = lower-cased breed from the image name."""
import os

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .errors import SplitFileError
from .sources import ROBOTS, Remote, Source, split
from .splits import split_trainval


@DATASET_REGISTRY.register()
class OxfordPets(CoOpDataset):
    dataset_dir = "oxford_pets"
    image_folder = "images"
    split_file = "split_zhou_OxfordPets.json"
    config_name = "oxford_pets"
    zeroshot_template = "a photo of a {}, a type of pet."
    table_order = 80
    dvp_cls_v = 3
    source = Source(config_name, dataset_dir, (
        Remote("images.tar.gz", f"{ROBOTS}/pets/data/images.tar.gz", md5="5c4f3ee8e5d25df40f4fd59a7f44e54c",
               unpack={"images": "."}, provides="images"),
        Remote("annotations.tar.gz", f"{ROBOTS}/pets/data/annotations.tar.gz", md5="95a8c909bbe2e81eed6a22bccdf3f68f",
               unpack={"annotations": "."}, provides="annotations"),
        split("split_zhou_OxfordPets.json", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    ))
    descriptions_key = "oxford_pets"
    layout = """\
oxford_pets/
  images/*.jpg                           (from images.tar.gz)
  annotations/trainval.txt, test.txt     (from annotations.tar.gz; needed only to create the split)
  split_zhou_OxfordPets.json             (CoOp's split; created from trainval (80/20) and test if missing)
"""

    def read_annotations(self, split_file):
        """Entries of annotations/<split_file>: lines "<image> <class id 1..37> <species> <breed id>"."""
        path = self.require_file(os.path.join("annotations", split_file))
        entries = []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields or line.startswith("#"):
                    continue
                if len(fields) != 4:
                    raise SplitFileError(f"{path}:{lineno}: expected '<image> <class> <species> <breed>', got {line!r}")
                imname, label = fields[0], int(fields[1]) - 1
                breed = "_".join(imname.split("_")[:-1]).lower()
                entries.append((os.path.join(self.image_dir, imname + ".jpg"), label, breed))
        return entries

    def create_splits(self, rng):
        trainval = self.read_annotations("trainval.txt")
        test = self.read_annotations("test.txt")
        train, val = split_trainval(trainval, rng)
        return train, val, test
