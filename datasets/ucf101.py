"""UCF101 middle frames (CoOp layout): 101 actions; 'ApplyEyeMakeup' is named 'Apply_Eye_Makeup'."""
import os
import re

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Remote, Source, gdrive, split
from .splits import split_trainval


def ucf_classname(action):
    """'ApplyEyeMakeup' -> 'Apply_Eye_Makeup' (CoOp splits the camel case at capitals)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(CoOpDataset):
    dataset_dir = "ucf101"
    image_folder = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    config_name = "ucf101"
    zeroshot_template = "a photo of a person doing {}."
    table_order = 100
    dvp_cls_v = 2
    source = Source(config_name, dataset_dir, (
        Remote("UCF-101-midframes.zip", gdrive("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"),
               unpack={"UCF-101-midframes": "."}, provides="UCF-101-midframes"),
        split("split_zhou_UCF101.json", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
    ))
    descriptions_key = "ucf101"
    layout = """\
ucf101/
  UCF-101-midframes/<Class_Name>/*.jpg   (from CoOp's UCF-101-midframes.zip)
  ucfTrainTestlist/classInd.txt, trainlist01.txt, testlist01.txt
                                         (needed only to create the split)
  split_zhou_UCF101.json                 (CoOp's split; created from trainlist01 (80/20) and testlist01 if missing)
"""

    def read_list(self, cname2lab, text_file):
        entries = []
        with open(self.require_file(text_file)) as f:
            for line in f:
                if not line.strip():
                    continue
                action, filename = line.strip().split(" ")[0].split("/")
                classname = ucf_classname(action)
                impath = os.path.join(self.image_dir, classname, filename.replace(".avi", ".jpg"))
                entries.append((impath, cname2lab[action], classname))
        return entries

    def create_splits(self, rng):
        cname2lab = {}
        with open(self.require_file(os.path.join("ucfTrainTestlist", "classInd.txt"))) as f:
            for line in f:
                if line.strip():
                    label, action = line.strip().split(" ")
                    cname2lab[action] = int(label) - 1
        trainval = self.read_list(cname2lab, os.path.join("ucfTrainTestlist", "trainlist01.txt"))
        test = self.read_list(cname2lab, os.path.join("ucfTrainTestlist", "testlist01.txt"))
        train, val = split_trainval(trainval, rng)
        return train, val, test
