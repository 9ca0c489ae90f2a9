"""Download the published description files: ``python -m descriptions.download``.

Fetches the AttrVR attribute files and the DVP cause files (see descriptions/published.py for the
repositories) into DEST/attributes and DEST/causes (default: descriptions/files, which the
trainers search). Each file is checked to be a JSON object of sentence lists before it is written
(atomically); files already present and valid are skipped unless --force.
"""
import argparse
import os
import sys
import time
import urllib.error
import urllib.request

from engine.io import atomic_write_bytes

from .files import DEFAULT_DIR, parse_description_bytes, read_description_file
from .published import BASE_URL_ENV, base_url, published_files, published_keys

TIMEOUT_S = 60
NETWORK_RETRIES = 2  # extra attempts after a network (not HTTP) error
RETRY_DELAY_S = 2.0


class NetworkError(RuntimeError):
    """The server could not be reached at all (no HTTP answer)."""


def fetch(url, timeout=None, retries=None, delay=None):
    """GET ``url`` and return its bytes; HTTPError passes through, network errors are retried."""
    timeout = TIMEOUT_S if timeout is None else timeout
    retries = NETWORK_RETRIES if retries is None else retries
    delay = RETRY_DELAY_S if delay is None else delay
    attempt = 0
    while True:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "vr-toolkit-descriptions"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as e:
            if attempt >= retries:
                reason = getattr(e, "reason", e)
                raise NetworkError(f"could not reach {url}: {reason}") from None
            attempt += 1
            time.sleep(delay * attempt)


def _is_valid(path):
    try:
        read_description_file(path)
        return True
    except (OSError, ValueError):
        return False


def download(dest=DEFAULT_DIR, groups=("attributes", "causes"), keys=None, force=False,
             log=print, retries=None, delay=None):
    """Download the published files; returns (downloaded, skipped, failures).

    ``failures`` is a list of (PublishedFile, message). A network error (no answer at all) stops
    the run: the remaining files are reported as not attempted.
    """
    dest = os.path.abspath(os.path.expanduser(dest))
    files = published_files(groups=groups, keys=keys)
    downloaded, skipped, failures = [], [], []
    total = len(files)
    for i, pf in enumerate(files, 1):
        target = os.path.join(dest, pf.group, pf.filename)
        tag = f"[{i}/{total}] {pf.relpath}"
        if not force and os.path.isfile(target):
            if _is_valid(target):
                skipped.append(pf)
                log(f"{tag}: present, skipped")
                continue
            log(f"{tag}: present but not a valid description file, downloading again")
        try:
            data = fetch(pf.url, retries=retries, delay=delay)
        except urllib.error.HTTPError as e:
            failures.append((pf, f"HTTP {e.code} {e.reason} for {pf.url}"))
            log(f"{tag}: FAILED (HTTP {e.code} {e.reason})")
            continue
        except NetworkError as e:
            failures.append((pf, str(e)))
            log(f"{tag}: FAILED ({e})")
            for rest in files[i:]:
                failures.append((rest, "not attempted after the network error above"))
            log(f"stopping: the network error above would repeat for the remaining "
                f"{total - i} file(s)")
            break
        try:
            obj = parse_description_bytes(data, pf.url)
            if not obj:
                raise ValueError(f"{pf.url}: the JSON object is empty")
        except ValueError as e:
            failures.append((pf, f"invalid content: {e}"))
            log(f"{tag}: FAILED (invalid content, not written)")
            continue
        atomic_write_bytes(target, data)
        downloaded.append(pf)
        log(f"{tag}: downloaded ({len(obj)} classes, {len(data) / 1024:.0f} KiB)")
    return downloaded, skipped, failures


def failure_report(failures, dest):
    """The lines that tell a user which files failed and how to get them by hand."""
    lines = [f"{len(failures)} file(s) failed:"]
    for pf, msg in failures:
        lines.append(f"  {pf.relpath}: {msg}")
    lines.append("Manual step: download each file from its repository page into the folder shown:")
    seen = set()
    for pf, _ in failures:
        if pf.group in seen:
            continue
        seen.add(pf.group)
        lines.append(f"  {pf.source.page_url}  ->  {os.path.join(dest, pf.group)}{os.sep}")
    lines.append(f"(downloads came from {base_url()}; set {BASE_URL_ENV} to use a mirror)")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m descriptions.download",
        description="Download the published description files (AttrVR attributes, DVP causes).")
    p.add_argument("--dest", default=DEFAULT_DIR,
                   help="folder that receives attributes/ and causes/ (default: %(default)s)")
    p.add_argument("--only", choices=["attributes", "causes"],
                   help="download only this group of files")
    p.add_argument("--keys", nargs="+", metavar="KEY",
                   help=f"dataset keys to download (default: all: {' '.join(published_keys())})")
    p.add_argument("--force", action="store_true", help="download again even if a valid file is present")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    groups = (args.only,) if args.only else ("attributes", "causes")
    keys = None
    if args.keys:
        keys = list(dict.fromkeys(args.keys))
        unknown = [k for k in keys if k not in published_keys()]
        if unknown:
            print(f"error: no published description files for key(s) {', '.join(unknown)}. "
                  f"Published keys: {', '.join(published_keys())}. For a new dataset create "
                  f"files with: python -m descriptions.generate", file=sys.stderr)
            return 2
        for k in keys:
            if not published_files(groups=groups, keys=[k]):
                print(f"note: no published {'/'.join(groups)} files for key {k!r} "
                      f"(no cause files are published for ImageNet, key 'I')")
    files = published_files(groups=groups, keys=keys)
    if not files:
        print("error: nothing to download for this selection", file=sys.stderr)
        return 2
    dest = os.path.abspath(os.path.expanduser(args.dest))
    print(f"downloading {len(files)} description file(s) into {dest}")
    downloaded, skipped, failures = download(dest, groups=groups, keys=keys, force=args.force)
    print(f"done: {len(downloaded)} downloaded, {len(skipped)} already present, "
          f"{len(failures)} failed -> {dest}")
    if failures:
        print(failure_report(failures, dest), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
