"""EuroSAT RGB (CoOp layout): 10 land-cover classes, renamed to CoOp's longer names."""
from engine import DATASET_REGISTRY

from .base import CoOpDataset
from .sources import Remote, Source, split
from .splits import read_and_split_data

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(CoOpDataset):
    dataset_dir = "eurosat"
    image_folder = "2750"
    split_file = "split_zhou_EuroSAT.json"
    config_name = "eurosat"
    zeroshot_template = "a centered satellite photo of {}."
    table_order = 50
    dvp_cls_v = 1
    source = Source(config_name, dataset_dir, (
        Remote("EuroSAT.zip", "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
               "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", md5="c8fa014336c82ac7804f0398fcb19387",
               unpack={"2750": "."}, provides="2750"),
        split("split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    ))
    descriptions_key = "eurosat"
    layout = """\
eurosat/
  2750/<class>/*.jpg                     (from EuroSAT.zip, the RGB version)
  split_zhou_EuroSAT.json                (CoOp's split; created 50/20/30 per class if missing)
"""

    def create_splits(self, rng):
        return read_and_split_data(self.image_dir, rng, new_cnames=NEW_CNAMES)
