"""Where the published description files live: the one place that names repositories and URLs.

The attribute files (DesAttr ``_des``, DistAttr ``_dist``) were published with AttrVR
(github caichengyi/AttrVR, folder ``attributes/gpt3``); the cause files (``_cse_N``, ``_csl_N``)
with DVP (github caichengyi/DecoupledVP, folder ``causes``). Both repositories use branch ``main``.
Tests and mirrors point the downloads elsewhere with the environment variable
``VR_DESCRIPTIONS_BASE_URL`` (it replaces ``https://raw.githubusercontent.com``; the
``<owner>/<repo>/<branch>/<folder>/<file>`` part of the path is kept).
"""
import os
from dataclasses import dataclass

RAW_BASE_URL = "https://raw.githubusercontent.com"
BASE_URL_ENV = "VR_DESCRIPTIONS_BASE_URL"


@dataclass(frozen=True)
class Source:
    """One public repository folder that holds description files."""

    repo: str  # owner/name on GitHub
    branch: str
    folder: str  # folder inside the repository

    @property
    def page_url(self):
        """The page a person opens to download the files by hand."""
        return f"https://github.com/{self.repo}/tree/{self.branch}/{self.folder}"


ATTRIBUTES_SOURCE = Source("caichengyi/AttrVR", "main", "attributes/gpt3")
CAUSES_SOURCE = Source("caichengyi/DecoupledVP", "main", "causes")
SOURCES = {"attributes": ATTRIBUTES_SOURCE, "causes": CAUSES_SOURCE}

# Keys with published attribute files (<key>_des.json and <key>_dist.json).
ATTRIBUTE_KEYS = (
    "I", "caltech101", "dtd", "eurosat", "fgvc", "food101", "oxford_flowers",
    "oxford_pets", "resisc45", "stanford_cars", "sun397", "ucf101",
)
ATTRIBUTE_SUFFIXES = ("des", "dist")

# Keys with published cause files: cse_1..3 everywhere (no ImageNet), csl_4..7 for three datasets.
CAUSE_KEYS = tuple(k for k in ATTRIBUTE_KEYS if k != "I")
_BASE_CAUSES = ("cse_1", "cse_2", "cse_3")
_EXTRA_CAUSES = ("csl_4", "csl_5", "csl_6", "csl_7")
_KEYS_WITH_EXTRA_CAUSES = ("dtd", "fgvc", "oxford_flowers")


def published_suffixes(group, key):
    """File-name suffixes published for ``key`` in ``group`` (empty tuple if none)."""
    if group == "attributes":
        return ATTRIBUTE_SUFFIXES if key in ATTRIBUTE_KEYS else ()
    if group == "causes":
        if key not in CAUSE_KEYS:
            return ()
        return _BASE_CAUSES + (_EXTRA_CAUSES if key in _KEYS_WITH_EXTRA_CAUSES else ())
    raise ValueError(f"unknown description group {group!r}: use 'attributes' or 'causes'")


def published_keys():
    """All keys with at least one published file, in a stable order."""
    return ATTRIBUTE_KEYS


def base_url():
    """The URL prefix downloads use: VR_DESCRIPTIONS_BASE_URL if set, else raw.githubusercontent.com."""
    return (os.environ.get(BASE_URL_ENV) or RAW_BASE_URL).rstrip("/")


@dataclass(frozen=True)
class PublishedFile:
    group: str  # "attributes" or "causes": the sub-folder it goes into
    filename: str  # e.g. "dtd_des.json"

    @property
    def source(self):
        return SOURCES[self.group]

    @property
    def url(self):
        src = self.source
        return f"{base_url()}/{src.repo}/{src.branch}/{src.folder}/{self.filename}"

    @property
    def relpath(self):
        return f"{self.group}/{self.filename}"


def published_files(groups=("attributes", "causes"), keys=None):
    """The published files of ``groups`` for ``keys`` (all published keys when None)."""
    keys = published_keys() if keys is None else keys
    out = []
    for group in groups:
        for key in keys:
            for suffix in published_suffixes(group, key):
                out.append(PublishedFile(group, f"{key}_{suffix}.json"))
    return out
