"""Description files: finding, validating, sampling, downloading and generating them.

Trainers use::

    from descriptions import load_and_sample
    sets = load_and_sample(cfg.DATASET.NAME, classnames, [("attributes", "des")], m=20, seed=cfg.SEED,
                           descriptions_dir=cfg.DATASET.DESCRIPTIONS_DIR, key=datasets.descriptions_key(cfg))
    print(sets[0].line)

Commands: ``python -m descriptions.download`` (published files), ``python -m descriptions.generate``
(new datasets).
"""
from .files import (
    BUILTIN_DIR,
    CFG_DESCRIPTIONS_DIR,
    CFG_DESCRIPTIONS_KEY,
    DEFAULT_DIR,
    Descriptions,
    available_suffixes,
    check_description_object,
    dataset_key,
    load_descriptions,
    read_description_file,
    resolve_file,
    search_dirs,
    write_description_file,
)
from .published import published_files, published_suffixes
from .sampling import (
    MODES,
    DescriptionSet,
    SamplingReport,
    format_report,
    load_and_sample,
    sample_descriptions,
    sample_per_label,
)

__all__ = [
    "BUILTIN_DIR", "CFG_DESCRIPTIONS_DIR", "CFG_DESCRIPTIONS_KEY", "DEFAULT_DIR",
    "Descriptions", "available_suffixes", "check_description_object", "dataset_key",
    "load_descriptions", "read_description_file", "resolve_file", "search_dirs",
    "write_description_file", "published_files", "published_suffixes", "MODES", "DescriptionSet",
    "SamplingReport", "format_report", "load_and_sample", "sample_descriptions",
    "sample_per_label",
]
