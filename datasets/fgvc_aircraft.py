"""FGVC Aircraft (CoOp layout): 100 variants; the dataset's own train/val/test lists, no split json."""
import os

from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .errors import SplitFileError
from .sources import ROBOTS, Remote, Source


@DATASET_REGISTRY.register()
class FGVCAircraft(CoOpDataset):
    dataset_dir = "fgvc_aircraft"
    image_folder = "images"
    split_file = ""
    config_name = "fgvc_aircraft"
    zeroshot_template = "a photo of a {}, a type of aircraft."
    table_order = 10
    dvp_cls_v = 3
    aliases = ("fgvc",)
    source = Source(config_name, dataset_dir, (
        Remote("fgvc-aircraft-2013b.tar.gz", f"{ROBOTS}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
               unpack={"fgvc-aircraft-2013b/data/*": "."}, provides="images"),
    ))
    descriptions_key = "fgvc"
    layout = """\
fgvc_aircraft/                           (the data/ folder of fgvc-aircraft-2013b.tar.gz, renamed)
  images/*.jpg
  variants.txt                           (one class name per line; label = line number)
  images_variant_train.txt, images_variant_val.txt, images_variant_test.txt
"""

    def split_source(self):
        return f"{self.dataset_dir}/images_variant_{{train,val,test}}.txt"

    def split_files(self):
        return [os.path.join(self.dataset_dir, name) for name in
                ("variants.txt", "images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")]

    def read_splits(self):
        with open(self.require_file("variants.txt")) as f:
            classnames = [line.strip() for line in f if line.strip()]
        cname2lab = {c: i for i, c in enumerate(classnames)}
        splits = {}
        for name in ("train", "val", "test"):
            path = self.require_file(f"images_variant_{name}.txt")
            entries = []
            with open(path) as f:
                for lineno, line in enumerate(f, 1):
                    fields = line.strip().split(" ")
                    if not line.strip():
                        continue
                    classname = " ".join(fields[1:])
                    if classname not in cname2lab:
                        raise SplitFileError(f"{path}:{lineno}: variant {classname!r} is not in variants.txt")
                    entries.append((os.path.join(self.image_dir, fields[0] + ".jpg"), cname2lab[classname], classname))
            splits[name] = entries
        return splits
