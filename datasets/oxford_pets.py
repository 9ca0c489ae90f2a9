"""Oxford-IIIT Pets (CoOp layout): 37 breeds; class name = lower-cased breed from the image name."""
import os

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .errors import SplitFileError
from .splits import split_trainval


@DATASET_REGISTRY.register()
class OxfordPets(CoOpDataset):
    dataset_dir = "oxford_pets"
    image_folder = "images"
    split_file = "split_zhou_OxfordPets.json"
    config_name = "oxford_pets"
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
        with open(path, "r") as f:
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
