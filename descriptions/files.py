"""Finding and validating description files.

A description file is a JSON object mapping each class name (exactly as the dataset loader names
it) to a list of sentences. Files live in ``<folder>/attributes/<key>_{des,dist}.json`` and
``<folder>/causes/<key>_<suffix>.json`` where ``<key>`` is the reference implementations' dataset
key. Folders are searched in order: ``DATASET.DESCRIPTIONS_DIR`` if set (else
``descriptions/files``, filled by ``python -m descriptions.download``), then ``descriptions/builtin``
(files shipped with the toolkit).
"""
import json
import os
import re

from engine.io import atomic_write_bytes
from engine.names import close_matches, is_file_key

from .published import published_suffixes

# Config options the trainers read; named once here so that messages and code agree.
CFG_DESCRIPTIONS_DIR = "DATASET.DESCRIPTIONS_DIR"
CFG_DESCRIPTIONS_KEY = "DATASET.DESCRIPTIONS_KEY"

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(PACKAGE_DIR, "files")  # git-ignored, filled by the download command
BUILTIN_DIR = os.path.join(PACKAGE_DIR, "builtin")  # shipped with the toolkit

GROUPS = ("attributes", "causes")
ATTRIBUTE_SUFFIXES = ("des", "dist")
_CAUSE_SUFFIX = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")


def check_key(key):
    """A key becomes part of a file name: refuse separators and the like."""
    if not is_file_key(key):
        raise ValueError(
            f"invalid description key {key!r}: use letters, digits, '_', '-' or '.', "
            "e.g. 'my_flowers' (files are then named attributes/my_flowers_des.json ...)"
        )
    return key


def dataset_key(name, key=""):
    """The file-name key for dataset ``name`` (DATASET.NAME): ``key``, checked.

    The key is a fact of the dataset, which its loader owns (``datasets.descriptions_key(cfg)``: the
    loader's ``descriptions_key``, DATASET.DESCRIPTIONS_KEY overriding it); the trainers pass it here.
    """
    if key:
        return check_key(key)
    raise ValueError(
        f"dataset {name!r} has no description key. Set {CFG_DESCRIPTIONS_KEY} to the key of your "
        f"description files (they are named attributes/<key>_des.json, attributes/<key>_dist.json, "
        f"causes/<key>_cse_1.json ...), or create them with: python -m descriptions.generate "
        f"--classnames <dataset folder or class list> --key <key> --dest <folder>."
    )


def search_dirs(descriptions_dir=""):
    """Folders searched for description files, in order."""
    first = os.path.abspath(os.path.expanduser(descriptions_dir)) if descriptions_dir else DEFAULT_DIR
    return [first, BUILTIN_DIR] if first != BUILTIN_DIR else [first]


def _check_group_suffix(group, suffix):
    if group not in GROUPS:
        raise ValueError(f"unknown description group {group!r}: use 'attributes' or 'causes'")
    if group == "attributes" and suffix not in ATTRIBUTE_SUFFIXES:
        raise ValueError(
            f"unknown attribute file suffix {suffix!r}: use 'des' (descriptive attributes) "
            "or 'dist' (distinctive attributes)"
        )
    if group == "causes" and not (isinstance(suffix, str) and _CAUSE_SUFFIX.match(suffix)):
        raise ValueError(
            f"invalid cause file suffix {suffix!r}: use a suffix such as 'cse_1' or 'csl_4' "
            "(file causes/<key>_cse_1.json)"
        )


def relative_name(group, key, suffix):
    """``attributes/<key>_<suffix>.json``: a file's name inside a descriptions folder."""
    return f"{group}/{key}_{suffix}.json"


def available_suffixes(group, key, dirs):
    """Suffixes of ``group`` files present for ``key`` in any of ``dirs`` (sorted, unique)."""
    found = set()
    prefix = key + "_"
    for d in dirs:
        folder = os.path.join(d, group)
        if not os.path.isdir(folder):
            continue
        for fn in os.listdir(folder):
            if fn.startswith(prefix) and fn.endswith(".json") and not fn.startswith("."):
                found.add(fn[len(prefix):-len(".json")])
    return sorted(found)


def resolve_file(dataset_name, group, suffix, descriptions_dir="", key=""):
    """Path of the description file ``<group>/<key>_<suffix>.json`` for a dataset.

    Raises FileNotFoundError naming every path tried and how to get the file.
    """
    key = dataset_key(dataset_name, key)
    _check_group_suffix(group, suffix)
    dirs = search_dirs(descriptions_dir)
    rel = relative_name(group, key, suffix)
    tried = [os.path.join(d, rel) for d in dirs]
    for path in tried:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(_missing_message(dataset_name, group, suffix, key, dirs, tried))


def _missing_message(dataset_name, group, suffix, key, dirs, tried):
    lines = [f"description file {relative_name(group, key, suffix)} for dataset {dataset_name!r} "
             f"(key {key!r}) not found. Looked for:"]
    lines += [f"  {p}" for p in tried]
    present = available_suffixes(group, key, dirs)
    published = published_suffixes(group, key)
    if group == "causes":
        if present:
            lines.append(f"cause files present for {key!r}: {', '.join(present)} "
                         f"(choose the cause suffixes among these)")
        if published:
            lines.append(f"published cause files for {key!r}: {', '.join(published)}")
    if published and suffix in published:
        dest = dirs[0]
        lines.append(f"Fix: download the published files with: python -m descriptions.download "
                     f"--dest {dest} --keys {key}")
        lines.append(f"  or set {CFG_DESCRIPTIONS_DIR} to a folder that holds {group}/ with this file.")
    else:
        why = (f"no published {group} file {key}_{suffix}.json exists" if published
               else f"no {group} files are published for key {key!r}")
        kind = ('causes --causes "<cause 1>,<cause 2>,<cause 3>" (writes cse_1, cse_2, ...)'
                if group == "causes" else suffix)
        lines.append(f"Fix: {why}; create the file with: python -m descriptions.generate "
                     f"--classnames <dataset folder or class list> --key {key} --dest {dirs[0]} "
                     f"--kind {kind}")
        lines.append(f"  or set {CFG_DESCRIPTIONS_DIR} to a folder that already holds "
                     f"{group}/{key}_{suffix}.json.")
    return "\n".join(lines)


def check_description_object(obj, where):
    """Raise ValueError unless ``obj`` is a JSON object of {class name: [sentence, ...]}."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object {{class name: [sentences]}}, "
                         f"got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, list) or not all(isinstance(s, str) for s in v)]
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{where}: the value of every class must be a list of strings; "
                         f"not so for {shown}")
    return obj


def parse_description_bytes(data, where):
    """Decode and validate the bytes of a description file (as downloaded or read)."""
    try:
        obj = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    return check_description_object(obj, where)


def read_description_file(path):
    """Read and structurally validate a description file (no class checks)."""
    with open(path, "rb") as f:
        data = f.read()
    return parse_description_bytes(
        data, f"{path} (fix or delete the file; re-download published files with "
              f"`python -m descriptions.download --force`)")


def write_description_file(path, obj):
    """Write a description file atomically (temp file in the same folder, then rename)."""
    check_description_object(obj, path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    data = (json.dumps(obj, indent=4, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write_bytes(path, data)


class Descriptions(dict):
    """{class name: [valid sentences]} in class order, plus where it came from.

    ``path``: the file; ``dropped``: number of sentences dropped as too short;
    ``min_chars``: the length threshold used.
    """

    def __init__(self, items=(), path="", dropped=0, min_chars=0):
        super().__init__(items)
        self.path = path
        self.dropped = dropped
        self.min_chars = min_chars


def _normalise(name):
    return re.sub(r"[\s_\-]+", " ", name).strip().lower()


def _suggestions(missing, available):
    """For each missing class, names in the file that differ only by _/space/-/case, or are close."""
    norm = {}
    for a in available:
        norm.setdefault(_normalise(a), []).append(a)
    normed_keys = list(norm)
    out = {}
    for name in missing:
        n = _normalise(name)
        if n in norm:
            out[name] = norm[n]
            continue
        close = close_matches(n, normed_keys, n=3, cutoff=0.85)
        if close:
            out[name] = [a for c in close for a in norm[c]]
    return out


def load_descriptions(path, classnames, min_chars=20, strip=False):
    """Read ``path`` and return the valid sentences of every class in ``classnames`` order.

    A sentence is valid if it has at least ``min_chars`` characters. By default the length is that
    of the sentence as stored, which is what the reference implementations test
    (``len(s) >= 20``); ``strip=True`` strips surrounding whitespace first and returns the
    stripped sentences (this drops three published fragments such as ' from ancient Egypt.' that
    the reference keeps, so it changes the reference's sample). Sentence order is kept.
    Raises ValueError for malformed files, classes missing from the file (all listed, with
    near-miss names from the file) and classes without a valid sentence.
    """
    if min_chars < 0:
        raise ValueError(f"min_chars must be >= 0, got {min_chars}")
    classnames = list(classnames)
    if not classnames:
        raise ValueError("load_descriptions: the list of class names is empty")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"description file not found: {path}")
    data = read_description_file(path)

    missing = [c for c in dict.fromkeys(classnames) if c not in data]
    if missing:
        raise ValueError(_missing_classes_message(path, classnames, missing, data))

    out = Descriptions(path=path, min_chars=min_chars)
    empty = []
    for c in classnames:
        if c in out:
            continue  # duplicated class name (e.g. two ImageNet classes share a name)
        sents = [s.strip() for s in data[c]] if strip else list(data[c])
        valid = [s for s in sents if len(s) >= min_chars]
        out.dropped += len(sents) - len(valid)
        if not valid:
            empty.append(c)
        out[c] = valid
    if empty:
        raise ValueError(
            f"{path}: no sentence of at least {min_chars} characters for "
            f"{len(empty)} class(es): {', '.join(repr(e) for e in empty)}. Regenerate the "
            f"descriptions of these classes (python -m descriptions.generate) or fix the file."
        )
    return out


def _missing_classes_message(path, classnames, missing, data):
    unique = list(dict.fromkeys(classnames))
    lines = [f"{path}: {len(missing)} of {len(unique)} classes have no entry in the file:"]
    lines.append("  " + ", ".join(repr(m) for m in missing))
    if len(missing) == len(unique):
        lines.append("  none of the dataset's classes is in the file: is it the file of another "
                     "dataset (check DATASET.NAME / the description key)?")
    sugg = _suggestions(missing, list(data))
    if sugg:
        lines.append("Close matches in the file (the keys must equal the loader's class names exactly):")
        for m, cands in sugg.items():
            lines.append(f"  {m!r} -> {', '.join(repr(c) for c in cands)}")
    lines.append("Fix: rename the keys in the file to the dataset's class names, or regenerate it "
                 "with python -m descriptions.generate for this dataset's class names.")
    return "\n".join(lines)
