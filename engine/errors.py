"""The one-line message of an error a user can fix, and which errors those are.

Commands print such an error as one ``ERROR: ...`` line without a traceback (and write it into the run's
log); anything else is a bug and keeps its traceback. Two kinds need unwrapping: PyTorch re-raises an
error from a DataLoader worker with the worker's whole traceback as its message, and the OS reports a full
or read-only disk without saying what to do.
"""
import errno

STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def storage_error_message(err):
    """A sentence for a full, read-only or forbidden location (None for other errors)."""
    if not isinstance(err, OSError) or err.errno not in STORAGE_ERRNOS:
        return None
    where = f" {err.filename}" if err.filename else ""
    fix = ("free some space or write to another disk (--output-dir, $VR_CACHE_DIR)" if err.errno in
           (errno.ENOSPC, errno.EDQUOT) else
           "make it writable or choose a writable place (--output-dir, $VR_CACHE_DIR)")
    verb = "write" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "access"
    return f"Cannot {verb}{where}: {STORAGE_ERRNOS[err.errno]} ({err.strerror or err}); {fix}."


def unwrap_worker_message(msg):
    """The original message of an error PyTorch re-raised from a DataLoader worker process."""
    if not msg.startswith("Caught ") or "Original Traceback" not in msg:
        return msg
    last = [line for line in msg.strip().splitlines() if line.strip()][-1]
    name, sep, rest = last.partition(": ")
    return rest if sep and name.replace(".", "").replace("_", "").isalnum() else last


def user_error_message(err, expected=()):
    """The message of ``err`` when it is an error the user can fix (``expected`` types, a storage error, a
    file that cannot be read), else None."""
    from .imageio import ImageReadError

    storage = storage_error_message(err)
    if storage is not None:
        return storage
    if not isinstance(err, tuple(expected) + (ImageReadError,)):
        return None
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return unwrap_worker_message(str(msg))
