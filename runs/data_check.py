"""Is the data a finished run used still the data under this data root? (the sweep's done rule, part 2)

results.json records ``data_identity`` (content hashes of the split, the few-shot draw and the classes)
and ``data_sources``: the files that data came from, relative to the data root (absolute when outside
it), with their hashes (engine/data_identity.py). Loading a dataset to recompute the identity would cost
seconds to minutes per run, so this check compares the files instead, cheaply and without torch:

- the dataset folder must exist under the current data root ("data not found" otherwise: the run then
  fails with the loader's clear error);
- each split file must exist and have the sha256 recorded;
- an ImageFolder's file listing must be the one recorded (images added or removed: not done);
- a few-shot cache, where it exists, must record the split and the draw the run used (a cache that is
  gone is drawn again from the same split, so it does not make the result stale).

A result without ``data_identity`` (older code) is not done: what it was computed on is unknown.
"""
import os.path as osp

from engine.data_identity import IDENTITY_KEY, SOURCES_KEY, folder_listing_sha256, sha256_file
from engine.fewshot_cache import read_cache_identity

_HASHES = {}  # (path, mtime, size) -> sha256: a sweep checks the same split file for many runs


def _file_sha256(path):
    st = osp.getsize(path), osp.getmtime(path)
    key = (osp.abspath(path),) + st
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def resolve(path, data_root):
    """A recorded source path on this machine: relative ones are under the current data root."""
    if osp.isabs(path):
        return path
    return osp.join(osp.abspath(osp.expanduser(data_root or ".")), path)


def _source_problem(source, data_root):
    role, path = source.get("role"), resolve(str(source.get("path", "")), data_root)
    if role == "dataset_dir":
        return None if osp.isdir(path) else f"data not found: no dataset folder {path}"
    if role == "split":
        if not osp.isfile(path):
            return f"data not found: no split file {path}"
        if _file_sha256(path) != source.get("sha256"):
            return f"split file {path} changed since this run (sha256 differs)"
        return None
    if role == "listing":
        if not osp.isdir(path):
            return f"data not found: no folder {path}"
        if folder_listing_sha256(path, source.get("ignored", ()), source.get("suffixes", ())) != source.get("sha256"):
            return f"the files in {path} changed since this run (files added or removed)"
        return None
    if role == "file":  # a file besides the data whose content changes the numbers (description files)
        what = source.get("what", "input")
        if not osp.isfile(path):
            return f"{what} file {path} not found"
        if _file_sha256(path) != source.get("sha256"):
            return f"{what} file {path} changed since this run (sha256 differs)"
        return None
    if role == "fewshot":
        if not osp.isfile(path):
            return None  # drawn again from the same (checked) split
        try:
            recorded = read_cache_identity(path)
        except Exception as err:  # unreadable: the run would say so and stop
            return f"few-shot cache {path} cannot be read ({type(err).__name__})"
        used = {k: source.get(k) for k in ("split_sha256", "train_sha256", "val_sha256") if k in source}
        if recorded is None or {k: recorded.get(k) for k in used} != used:
            return f"few-shot cache {path} holds another draw than this run used"
        return None
    return None


def data_problems(results, data_root):
    """Why ``results`` were computed on other data than ``data_root`` holds now ([] when they match).
    With ``data_root`` None only the presence of a recorded identity is checked."""
    identity = results.get(IDENTITY_KEY)
    if not isinstance(identity, dict) or not identity:
        return ["no data identity recorded (results.json of older code: its data cannot be checked)"]
    if data_root is None:
        return []
    sources = results.get(SOURCES_KEY)
    if not isinstance(sources, list):
        return ["no data sources recorded"]
    problems = []
    for source in sources:
        problem = _source_problem(source, data_root) if isinstance(source, dict) else "a data source is malformed"
        if problem:
            problems.append(problem)
            if problem.startswith("data not found"):
                break
    return problems
