"""Where each dataset's files come from: URLs, checksums, how archives unpack, and manual steps.

Every download URL is resolved by :func:`resolve_url`, the one place that knows the base URLs. Setting
a mirror (``--mirror URL`` or the environment variable ``DATASETS_MIRROR``) replaces all of them,
Google Drive included: file ``<filename>`` of dataset ``<name>`` is then fetched from
``<mirror>/<name>/<filename>`` (tests point it at a local HTTP server; a lab can host its own copy).

Links are the ones CoOp's DATASETS.md gives, replaced where those are dead by the copies torchvision
uses (Caltech101, EuroSAT), and for RESISC45 the archive torchgeo uses and BlackVIP's split file.
ImageNet variants: ImageNet-V2 from its authors' Hugging Face copy, ImageNet-A / -R from the authors'
server (no published checksums), ImageNet-Sketch by hand (no stable direct link).
Checksums are those published by torchvision / torchgeo; Google Drive files have none.
"""
import os
from dataclasses import dataclass

MIRROR_ENV = "DATASETS_MIRROR"
GDRIVE_PREFIX = "gdrive:"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class Remote:
    """One file to fetch.

    ``url``: the official URL, or ``gdrive:<id>`` for a Google Drive file (fetched with gdown).
    ``unpack``: for an archive, ``{pattern: destination}``; every path of the extracted archive that
    matches the glob ``pattern`` is moved to ``<dataset folder>/<destination>/<its name>`` (folders are
    merged), or, if it is itself an archive, extracted there. ``None``: a plain file saved as ``dest``.
    ``provides``: a path in the dataset folder whose presence means this file is already in place.
    """

    filename: str
    url: str
    md5: str = ""
    sha256: str = ""
    size: int = 0
    unpack: dict = None
    dest: str = ""
    provides: str = ""

    @property
    def is_gdrive(self):
        return self.url.startswith(GDRIVE_PREFIX)

    @property
    def target(self):
        """What must exist in the dataset folder once this file is in place."""
        return self.provides or self.dest or self.filename


@dataclass(frozen=True)
class Source:
    """A dataset's files: ``name`` (config name), ``folder`` (under the data root), ``remotes``, and
    ``manual``: steps printed for the parts without a working public link ("" when there are none)."""

    name: str
    folder: str
    remotes: tuple
    manual: str = ""


def gdrive(file_id):
    return GDRIVE_PREFIX + file_id


def gdrive_view_url(remote):
    return f"https://drive.google.com/file/d/{remote.url[len(GDRIVE_PREFIX):]}/view"


def split(filename, file_id):
    """A CoOp-style split json (or other small file) hosted on Google Drive."""
    return Remote(filename, gdrive(file_id))


ROBOTS = "https://www.robots.ox.ac.uk/~vgg/data"
HENDRYCKS = "https://people.eecs.berkeley.edu/~hendrycks"
# CoOp's ImageNet class names; the four ImageNet variants keep a copy in their folders too.
IMAGENET_CLASSNAMES = split("classnames.txt", "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF")

SOURCES = {s.name: s for s in (
    Source("caltech101", "caltech-101", (
        Remote("caltech-101.zip", "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
               md5="3138e1922a9193bfa496528edbbc45d0",
               unpack={"caltech-101/101_ObjectCategories.tar.gz": "."}, provides="101_ObjectCategories"),
        split("split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    )),
    Source("dtd", "dtd", (
        Remote("dtd-r1.0.1.tar.gz", f"{ROBOTS}/dtd/download/dtd-r1.0.1.tar.gz", md5="fff73e5086ae6bdbea199a49dfb8a4c1",
               unpack={"dtd/*": "."}, provides="images"),
        split("split_zhou_DescribableTextures.json", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    )),
    Source("eurosat", "eurosat", (
        Remote("EuroSAT.zip", "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
               "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", md5="c8fa014336c82ac7804f0398fcb19387",
               unpack={"2750": "."}, provides="2750"),
        split("split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    )),
    Source("fgvc_aircraft", "fgvc_aircraft", (
        Remote("fgvc-aircraft-2013b.tar.gz", f"{ROBOTS}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
               unpack={"fgvc-aircraft-2013b/data/*": "."}, provides="images"),
    )),
    Source("food101", "food-101", (
        Remote("food-101.tar.gz", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
               md5="85eeb15f3717b99a5da872d97d918f87", unpack={"food-101/*": "."}, provides="images"),
        split("split_zhou_Food101.json", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    )),
    Source("oxford_flowers", "oxford_flowers", (
        Remote("102flowers.tgz", f"{ROBOTS}/flowers/102/102flowers.tgz", md5="52808999861908f626f3c1f4e79d11fa",
               unpack={"jpg": "."}, provides="jpg"),
        Remote("imagelabels.mat", f"{ROBOTS}/flowers/102/imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d"),
        split("cat_to_name.json", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0"),
        split("split_zhou_OxfordFlowers.json", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    )),
    Source("oxford_pets", "oxford_pets", (
        Remote("images.tar.gz", f"{ROBOTS}/pets/data/images.tar.gz", md5="5c4f3ee8e5d25df40f4fd59a7f44e54c",
               unpack={"images": "."}, provides="images"),
        Remote("annotations.tar.gz", f"{ROBOTS}/pets/data/annotations.tar.gz", md5="95a8c909bbe2e81eed6a22bccdf3f68f",
               unpack={"annotations": "."}, provides="annotations"),
        split("split_zhou_OxfordPets.json", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    )),
    Source("stanford_cars", "stanford_cars", (
        split("split_zhou_StanfordCars.json", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT"),
    ), manual="""\
The official Stanford Cars links (ai.stanford.edu/~jkrause/cars) are offline and no other official copy
exists. Get the images and annotations from a copy you trust (e.g. the Kaggle dataset
"jessicali9530/stanford-cars-dataset" plus the devkit and cars_test_annos_withlabels.mat) and arrange:
  {dataset_dir}/cars_train/00001.jpg ...
  {dataset_dir}/cars_test/00001.jpg ...
  {dataset_dir}/devkit/cars_meta.mat, cars_train_annos.mat   (only needed without the split file)
  {dataset_dir}/cars_test_annos_withlabels.mat                (only needed without the split file)
The split file split_zhou_StanfordCars.json is fetched by this command."""),
    Source("sun397", "sun397", (
        Remote("SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
               md5="8ca2778205c41d23104230ba66911c7a", unpack={"SUN397": "."}, provides="SUN397"),
        Remote("Partitions.zip", "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip",
               unpack={"**/*.txt": "."}, provides="ClassName.txt"),
        split("split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    )),
    Source("ucf101", "ucf101", (
        Remote("UCF-101-midframes.zip", gdrive("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"),
               unpack={"UCF-101-midframes": "."}, provides="UCF-101-midframes"),
        split("split_zhou_UCF101.json", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y"),
    )),
    Source("resisc45", "resisc45", (
        Remote("NWPU-RESISC45.zip", "https://hf.co/datasets/isaaccorley/resisc45/resolve/"
               "883edc0eee77b2c84225472f10f126e3ed83fa6e/NWPU-RESISC45.zip",
               sha256="beeecd0b63656290ae6d65cf7763185b0c1c4c54a753ef8088d6fba3faaf1f53",
               unpack={"NWPU-RESISC45": "."}, provides="NWPU-RESISC45"),
        split("split_mlai_Resisc45.json", "1QTThkyN-p58hAxN7wpBntO4CncTf9qtF"),
    )),
    Source("imagenet", "imagenet", (
        IMAGENET_CLASSNAMES,
    ), manual="""\
ImageNet (ILSVRC2012) needs an account: register at https://image-net.org, download
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, then
  - extract the train archive and each per-class tar inside it into {dataset_dir}/images/train/<wnid>/
  - extract the val archive and sort its 50,000 images into {dataset_dir}/images/val/<wnid>/
    (e.g. with the widely used valprep.sh script)
If you already have ImageNet elsewhere, symlink its train/ and val/ folders into {dataset_dir}/images/.
classnames.txt (CoOp's class names) is fetched by this command."""),
    Source("imagenetv2", "imagenetv2", (
        Remote("imagenetv2-matched-frequency.tar.gz", "https://huggingface.co/datasets/vaishaal/ImageNetV2/"
               "resolve/main/imagenetv2-matched-frequency.tar.gz",
               unpack={"imagenetv2-matched-frequency-format-val": "."},
               provides="imagenetv2-matched-frequency-format-val"),
        IMAGENET_CLASSNAMES,
    )),
    Source("imagenet_sketch", "imagenet-sketch", (
        IMAGENET_CLASSNAMES,
    ), manual="""\
ImageNet-Sketch has no stable direct link. Get it from the authors' page
https://github.com/HaohanWang/ImageNet-Sketch (Google Drive, or the Kaggle dataset
"wanghaohan/imagenetsketch"), unpack it and move its class folders (sketch/<wnid>/*.JPEG) to
  {dataset_dir}/images/<wnid>/
classnames.txt (ImageNet's class names, CoOp's file) is fetched by this command."""),
    Source("imagenet_a", "imagenet-adversarial", (
        Remote("imagenet-a.tar", f"{HENDRYCKS}/imagenet-a.tar", unpack={"imagenet-a": "."},
               provides="imagenet-a"),
        IMAGENET_CLASSNAMES,
    )),
    Source("imagenet_r", "imagenet-rendition", (
        Remote("imagenet-r.tar", f"{HENDRYCKS}/imagenet-r.tar", unpack={"imagenet-r": "."},
               provides="imagenet-r"),
        IMAGENET_CLASSNAMES,
    )),
)}


def get_source(name):
    """The Source of a config name or loader class name (case-insensitive)."""
    from .catalog import find_loader

    return SOURCES[find_loader(name).config_name]


def mirror_base(mirror=None):
    """The mirror base URL in effect ("" = official URLs)."""
    base = mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")
    return base.rstrip("/")


def resolve_url(source, remote, mirror=None):
    """The URL to fetch ``remote`` from: ``<mirror>/<name>/<filename>`` when a mirror is set, else the
    official URL (for Google Drive files: the gdown URL of the file id)."""
    base = mirror_base(mirror)
    if base:
        return f"{base}/{source.name}/{remote.filename}"
    if remote.is_gdrive:
        return f"https://drive.google.com/uc?id={remote.url[len(GDRIVE_PREFIX):]}"
    return remote.url
