"""Config keys of the dataset loaders (added to Dassl's tree by engine.extend.extend_cfg)."""
from engine.extend import register_config


@register_config
def add_dataset_keys(cfg):
    # ImageFolder (your own data): a folder with one sub-folder per class. Absolute, or relative to
    # DATASET.ROOT.
    cfg.DATASET.IMAGEFOLDER_DIR = ""
    # Optional renaming of class folders: a json {folder: class name} or a text file with lines
    # "<folder> <class name>" (ImageNet's classnames.txt format). Relative paths are relative to the
    # image folder.
    cfg.DATASET.CLASSNAMES_FILE = ""
    # Key of the description files (<key>_des.json, ...): "" -> the dataset's published key
    # (caltech101, dtd, ..., I for ImageNet), or the image folder's name for ImageFolder.
    cfg.DATASET.DESCRIPTIONS_KEY = ""
