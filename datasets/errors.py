"""The errors a user can cause with a data root, each with a message that names the fix.

They subclass the built-in exception a caller would expect (FileNotFoundError, ValueError, OSError),
so ``except FileNotFoundError`` keeps working, and their single-string constructor lets PyTorch's
DataLoader re-raise them unchanged from worker processes.
"""
import os


def download_command(name, root):
    """The command that fetches dataset ``name`` into data root ``root``."""
    return f"python -m datasets.download {name} --root {root}"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder (or a file its layout needs) is missing under DATASET.ROOT."""


class MissingImagesError(FileNotFoundError):
    """A split file or cache names images that are not on disk."""


class SplitFileError(ValueError):
    """A split file or annotation file exists but cannot be parsed."""


def missing_layout_error(what, path, dataset_name, root, layout):
    """Build the error for a missing folder/file: what is missing, the expected layout and the fix."""
    lines = [f"{what} not found: {path}", "", f"Expected layout under DATASET.ROOT ({root}):", layout.rstrip()]
    if dataset_name:
        lines += ["", f"Fetch it with: {download_command(dataset_name, root)}",
                  f"(or check it with: python -m datasets.check --root {root} {dataset_name})"]
    return DatasetNotFoundError("\n".join(lines))


def missing_images_error(missing, total, source, hint=""):
    """Build the error for a list of image paths that do not exist (first few shown, then the count)."""
    shown = "\n".join(f"  {p}" for p in missing[:5])
    more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
    msg = (f"{len(missing)} of {total} images listed in {source} do not exist, e.g.:\n{shown}{more}")
    if hint:
        msg += "\n" + hint
    return MissingImagesError(msg)


def find_missing(paths):
    """The paths of ``paths`` that are not existing files (order kept)."""
    return [p for p in paths if not os.path.isfile(p)]
