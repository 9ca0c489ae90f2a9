"""Where a dataset's files come from: URLs, checksums, how archives unpack, and manual steps.

Each loader states its own ``source = Source(config_name, dataset_dir, (Remote(...), ...))``; this
module holds the types, the shared pieces (Google Drive split files, base URLs) and the URL resolver.

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



def get_source(name):
    """The Source of a config name or loader class name (case-insensitive)."""
    from .catalog import find_loader

    return find_loader(name).source


def __getattr__(name):
    # SOURCES: {config name: Source} of the public loaders (each loader states its ``source``).
    if name == "SOURCES":
        from .catalog import public_loaders

        return {cls.config_name: cls.source for cls in public_loaders()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
