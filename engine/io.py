"""Writing files safely, for the whole project (stdlib only, so that every command can use it).

* Atomic writes: parallel sweeps and killed runs never leave half-written files behind. A write that fails
  (full or read-only disk) removes its temporary file and raises an OSError that names the target file.
* ``file_lock``: an exclusive POSIX lock, so that concurrent first uses build a cache once.
* ``user_cache_dir``: where caches go when not beside the data (``$VR_CACHE_DIR``).
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any

CACHE_ENV = "VR_CACHE_DIR"
CACHE_NAME = "vr-toolkit"

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    ``mode`` is masked by the umask as ``open`` would (0o777 for scripts meant to be executed)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
        os.chmod(tmp, mode & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        _write_file(fd, data)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        if err.filename is None and err.errno is not None:  # ENOSPC on write() names no file: name it
            raise type(err)(err.errno, err.strerror, path) from err
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise


def _write_file(fd: int, data: bytes) -> None:
    """Write ``data`` to the open file ``fd`` and force it to disk (then close it)."""
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _remove_quietly(path: str) -> None:
    if path is not None and os.path.exists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


def atomic_write_text(path: str, text: str, mode: int = 0o666) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_pickle_dump(path: str, obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=protocol))


@contextlib.contextmanager
def file_lock(path: str, blocking: bool = True) -> Iterator[IO[str]]:
    """Hold an exclusive lock on the file ``path`` (created if needed) for the block; yields the open lock
    file (a child process given its descriptor keeps the lock while it lives).

    ``blocking=False`` raises BlockingIOError at once when another process holds it. Without flock
    (Windows, or a file system without locks) the block runs unlocked: atomic writes still keep files intact.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    with open(path, "a") as handle:
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                locked = True
            except BlockingIOError:
                raise
            except OSError:  # no locks on this file system
                pass
        try:
            yield handle
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def user_cache_dir(environ: dict[str, str] | None = None) -> str:
    """``$VR_CACHE_DIR``, else ``$XDG_CACHE_HOME/vr-toolkit``, else ``~/.cache/vr-toolkit``."""
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(environ[CACHE_ENV]))
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_NAME)

