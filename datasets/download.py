"""Download datasets into the layout the loaders expect.

    python -m datasets.download NAME [NAME ...] --root DATA      (NAME: caltech101, dtd, ..., or all)
    python -m datasets.download dtd --root DATA --mirror http://host/datasets

Each dataset's official archives and split file (gdown for Google Drive files) go to
``<dataset folder>/.download/``, are checked (size, md5/sha256 where published), resumed when an
earlier run was interrupted, unpacked into place and deleted (``--keep-archives`` keeps them). Parts
already in place are skipped, so running the command again finishes an incomplete download. For files
without a working public link (ImageNet, Stanford Cars images) the manual steps are printed.
URLs come from datasets/sources.py; ``--mirror`` (or DATASETS_MIRROR) replaces every base URL.
"""
import argparse
import os
import sys

from . import sources
from .catalog import find_loader
from .fetch import DownloadError, gdown_download, http_download, unpack, verify
from .sources import gdrive_view_url, get_source, resolve_url


def fetch_remote(source, remote, dataset_dir, mirror=None, keep_archives=False, quiet=False):
    """Put one Remote in place (skipped when its target exists). Raises DownloadError."""
    target = os.path.join(dataset_dir, remote.target)
    staging = os.path.join(dataset_dir, ".download")
    path = os.path.join(staging, remote.filename)
    unpacking = path + ".unpacking"  # present while an archive is being unpacked (an interrupted run)
    if os.path.exists(target) and not os.path.exists(unpacking):
        if not quiet:
            print(f"  {remote.target}: already present")
        return
    os.makedirs(staging, exist_ok=True)
    url = resolve_url(source, remote, mirror)
    if os.path.exists(path):  # complete from an earlier run that stopped before or while unpacking
        verify(path, remote)
    else:
        if not quiet:
            print(f"  fetching {remote.filename} from {url}")
        if remote.is_gdrive:
            gdown_download(url, path, remote, gdrive_view_url(remote), quiet=quiet)
        else:
            http_download(url, path, remote, quiet=quiet)
    if remote.unpack:
        with open(unpacking, "w"):
            pass
        unpack(path, remote, dataset_dir, quiet=quiet)
        os.remove(unpacking)
        if not keep_archives:
            os.remove(path)
    else:
        os.replace(path, os.path.join(dataset_dir, remote.dest or remote.filename))
    if not os.listdir(staging):
        os.rmdir(staging)


def layout_complete(name, root):
    """Whether the loader finds its dataset folder and image folders (no images are read)."""
    from .catalog import find_loader

    try:
        find_loader(name).locate(root).check_layout()
    except FileNotFoundError:
        return False
    return True


def download_dataset(name, root, mirror=None, keep_archives=False, quiet=False):
    """Fetch every file of dataset ``name`` under ``root``. Returns "ok", "manual" or "failed"."""
    source = get_source(name)
    dataset_dir = os.path.join(os.path.abspath(os.path.expanduser(root)), source.folder)
    print(f"== {source.name} -> {dataset_dir}")
    os.makedirs(dataset_dir, exist_ok=True)
    failed = []
    for remote in source.remotes:
        try:
            fetch_remote(source, remote, dataset_dir, mirror, keep_archives, quiet)
        except DownloadError as err:
            failed.append(str(err))
            print(f"  FAILED: {err}")
    if failed:
        return "failed"
    build = getattr(find_loader(source.name), "build_from_local", None)  # built from local files (MNIST family)
    if build is not None:
        return "ok" if build(root, quiet=quiet) else "manual"
    if source.manual and not layout_complete(source.name, root):
        print("  Manual steps needed:\n" + "\n".join("    " + line for line in
                                                      source.manual.format(dataset_dir=dataset_dir).splitlines()))
        return "manual"
    return "ok"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m datasets.download", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", metavar="NAME", help=f"dataset(s): {', '.join(sources.SOURCES)}, or all")
    parser.add_argument("--root", required=True, help="data root (DATASET.ROOT)")
    parser.add_argument("--mirror", default=None, help="base URL replacing every official one: files are fetched "
                                                       "from <mirror>/<name>/<filename> (default: $DATASETS_MIRROR)")
    parser.add_argument("--keep-archives", action="store_true", help="keep archives after unpacking them")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = list(sources.SOURCES) if "all" in [n.lower() for n in args.names] else args.names
    try:
        names = [get_source(n).name for n in names]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    status = {name: download_dataset(name, args.root, args.mirror, args.keep_archives, args.quiet) for name in names}
    print("\nSummary:")
    for name, st in status.items():
        print(f"  {name:15s} {st}")
    print(f"Check the result with: python -m datasets.check --root {args.root} {' '.join(names)}")
    return 1 if "failed" in status.values() else 0


if __name__ == "__main__":
    sys.exit(main())
