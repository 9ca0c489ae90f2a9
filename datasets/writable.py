"""Files a loader writes beside the data (split json, few-shot caches), and where they go when the data
root cannot be written (a read-only disk, a shared folder without write permission).

The fallback is ``$VR_CACHE_DIR/data/<folder>-<hash of its absolute path>/<same relative path>``, so two
roots never share a file; a later run on the same root reads it from there; each use is said in the log.
"""
import errno
import hashlib
import os

from engine.io import user_cache_dir

READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def fallback_path(dataset_dir, relpath):
    """Where ``dataset_dir/relpath`` is written when ``dataset_dir`` cannot be."""
    folder = os.path.abspath(dataset_dir)
    tag = f"{os.path.basename(folder) or 'data'}-{hashlib.sha256(folder.encode()).hexdigest()[:12]}"
    return os.path.join(user_cache_dir(), "data", tag, relpath)


def existing_path(dataset_dir, relpath, what):
    """``dataset_dir/relpath`` if it exists, else its fallback if that exists (said), else the former."""
    path = os.path.join(dataset_dir, relpath)
    fallback = fallback_path(dataset_dir, relpath)
    if not os.path.exists(path) and os.path.exists(fallback):
        print(f"Note: using the {what} {fallback}, written there because the data root could not be written")
        return fallback
    return path


def write_beside_data(dataset_dir, relpath, write, what):
    """``write(path)`` to ``dataset_dir/relpath``, or to its fallback (said) when the data root cannot be
    written; returns the path written. Other errors (a full disk) propagate."""
    path = os.path.join(dataset_dir, relpath)
    try:
        write(path)
        return path
    except OSError as err:
        if err.errno not in READ_ONLY_ERRNOS:
            raise
        fallback = fallback_path(dataset_dir, relpath)
        print(f"Note: the data root cannot be written ({err.strerror}: {path}); the {what} goes to {fallback} "
              f"instead ($VR_CACHE_DIR chooses that folder).")
    write(fallback)
    return fallback
