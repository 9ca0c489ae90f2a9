"""Digits: scikit-learn's handwritten digits as a CoOp-style dataset, built on first use (no download).

``DATASET.DIGITS_SHIFT`` picks a domain shift (none, low_contrast, inverted, tinted, noisy): the same
images, labels and split, drawn differently, so that visual reprogramming of ``digits-tiny`` has
something to fix. Each shift is its own dataset folder ``<ROOT>/digits/<shift>`` (images, split json,
few-shot cache), see :mod:`datasets.digits_data`.
"""
import os

from engine import DATASET_REGISTRY
from engine.extend import register_config

from .base import CoOpDataset
from .digits_data import (
    IMAGE_DIR,
    SHIFTS,
    SPLIT_FILE,
    build_digits,
    check_shift,
    shift_doc,
)


@register_config
def add_digits_keys(cfg):
    # Domain shift of the Digits dataset (see datasets/digits_data.py): none, low_contrast, inverted,
    # tinted or noisy.
    cfg.DATASET.DIGITS_SHIFT = "none"


@DATASET_REGISTRY.register()
class Digits(CoOpDataset):
    dataset_dir = "digits"
    image_folder = IMAGE_DIR
    split_file = SPLIT_FILE
    config_name = "digits"
    zeroshot_template = 'a photo of the digit "{}".'  # this project's: CoOp has none
    descriptions_key = "digits"
    shifts = SHIFTS
    shift = "none"  # set from DATASET.DIGITS_SHIFT before the paths are used
    column_key = {"key": "DIGITS_SHIFT", "default": "none"}  # each shift is its own table column
    layout = f"""\
digits/<shift>/                           (built on first use from scikit-learn; shifts: {", ".join(SHIFTS)})
  images/<class>/<index>.png
  {SPLIT_FILE}
  split_fewshot/shot_<K>-seed_<S>.pkl    (per shift)
"""

    def set_paths(self, root):
        super().set_paths(root)
        self.dataset_dir = os.path.join(self.dataset_dir, self.shift)
        self.image_dir = os.path.join(self.dataset_dir, self.image_folder)
        self.split_path = os.path.join(self.dataset_dir, self.split_file)
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")

    def configure(self, cfg):
        shift = cfg.DATASET.get("DIGITS_SHIFT", "none")
        self.shift = check_shift(shift)
        build_digits(self.root, self.shift)
        self.set_paths(self.root)
        print(f'Digits: shift "{self.shift}" ({shift_doc(self.shift)}), data in {self.dataset_dir}')
