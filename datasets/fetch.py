"""Fetching one file (resumable HTTP or gdown), checking it, and unpacking archives into place.

- :func:`http_download`: streams to ``<file>.part`` and renames when complete; an interrupted
  download resumes from the ``.part`` file with an HTTP Range request (a server that ignores Range
  restarts it from zero). Size (Content-Length or known size) and md5/sha256 are checked; a mismatch
  deletes the file and says so.
- :func:`gdown_download`: Google Drive files through gdown (``resume=True``), with the manual link when
  Drive refuses (quota, permissions).
- :func:`unpack`: extracts an archive into a staging folder, then moves the parts named by the
  Remote's ``unpack`` patterns into the dataset folder (nested archives are extracted there).
"""
import glob
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile

from .sources import ARCHIVE_SUFFIXES

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched, or it arrived wrong (size, checksum)."""


def file_digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path, remote, expected_size=None):
    """Check size and checksum of a downloaded file; delete it and raise DownloadError on a mismatch."""
    size = os.path.getsize(path)
    for want in (expected_size, remote.size):
        if want and size != want:
            os.remove(path)
            raise DownloadError(f"{remote.filename}: got {size} bytes, expected {want}; the file was deleted, "
                                f"run the command again.")
    for algorithm in ("md5", "sha256"):
        want = getattr(remote, algorithm)
        if want:
            got = file_digest(path, algorithm)
            if got != want:
                os.remove(path)
                raise DownloadError(f"{remote.filename}: {algorithm} checksum mismatch (expected {want}, got {got}); "
                                    f"the download was corrupted or the file changed upstream. The file was "
                                    f"deleted; run the command again.")


def _content_length(response):
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def http_download(url, path, remote, quiet=False, timeout=60):
    """Fetch ``url`` to ``path`` (resuming ``path.part``), then verify it."""
    part = path + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "datasets.download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the .part file already holds everything
            os.replace(part, path)
            verify(path, remote)
            return path
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: {getattr(err, 'reason', err)}") from None
    with response:
        if have and response.status == 206:
            mode, total = "ab", (_content_length(response) or 0) + have
            if not quiet:
                print(f"  resuming {remote.filename} at {have} bytes")
        else:
            mode, total, have = "wb", _content_length(response), 0
        done, next_report = have, 0.1
        try:
            with open(part, mode) as f:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    done += len(block)
                    if total and not quiet and done / total >= next_report:
                        print(f"  {remote.filename}: {done / total:.0%} of {total / 1e6:.1f} MB")
                        next_report += 0.1
        except OSError as err:
            raise DownloadError(f"{url}: interrupted after {done} bytes ({err}); run the same command again to "
                                f"resume from {part}.") from None
    if total and os.path.getsize(part) < total:
        raise DownloadError(f"{url}: interrupted after {os.path.getsize(part)} of {total} bytes; run the same "
                            f"command again to resume from {part}.")
    os.replace(part, path)
    verify(path, remote, expected_size=total)
    return path


def gdown_download(url, path, remote, manual_url, quiet=False):
    """Fetch a Google Drive file (or its mirror URL) with gdown, resuming; then verify it."""
    try:
        import gdown
    except ImportError:
        raise DownloadError(f"{remote.filename} is on Google Drive and needs gdown (pip install gdown), or "
                            f"download {manual_url} by hand and save it as {path}.") from None
    try:
        result = gdown.download(url=url, output=path, quiet=quiet, resume=True)
    except Exception as err:  # gdown raises its own errors for quota / permission pages
        result, reason = None, f"{type(err).__name__}: {err}"
    else:
        reason = "gdown returned no file"
    if not result or not os.path.exists(path):
        raise DownloadError(f"{remote.filename}: Google Drive download failed ({reason}). Download {manual_url} "
                            f"in a browser and save it as {path}, then run the command again.")
    verify(path, remote)
    return path


def is_archive(path):
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive, dest):
    """Extract a tar/zip archive into ``dest`` (tar members outside ``dest`` are refused)."""
    os.makedirs(dest, exist_ok=True)
    if archive.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            try:
                tf.extractall(dest, filter="data")
            except TypeError:  # Python without extraction filters
                tf.extractall(dest)


def merge_move(src, dst):
    """Move file or folder ``src`` to ``dst``; folders are merged into an existing ``dst``."""
    if os.path.isdir(src) and os.path.isdir(dst):
        for name in os.listdir(src):
            merge_move(os.path.join(src, name), os.path.join(dst, name))
        os.rmdir(src)
    else:
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        os.replace(src, dst)


def unpack(archive, remote, dataset_dir, quiet=False):
    """Extract ``archive`` and move the parts its Remote names into ``dataset_dir``."""
    staging = archive + ".extract"
    if os.path.exists(staging):
        shutil.rmtree(staging)
    if not quiet:
        print(f"  extracting {os.path.basename(archive)}")
    try:
        extract(archive, staging)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        os.remove(archive)
        raise DownloadError(f"{remote.filename} is not a readable archive ({err}); it was deleted, run the command "
                            f"again.") from None
    for pattern, destination in remote.unpack.items():
        matches = sorted(glob.glob(os.path.join(staging, pattern), recursive=True))
        if not matches:
            shutil.rmtree(staging, ignore_errors=True)
            raise DownloadError(f"{remote.filename} has no '{pattern}' inside; its layout differs from the expected "
                                f"one. Extract it by hand into {dataset_dir} (see the layout in the dataset's loader).")
        target_dir = os.path.join(dataset_dir, destination)
        for match in matches:
            if os.path.isfile(match) and is_archive(match):
                extract(match, target_dir)
            else:
                merge_move(match, os.path.join(target_dir, os.path.basename(match)))
    shutil.rmtree(staging, ignore_errors=True)
