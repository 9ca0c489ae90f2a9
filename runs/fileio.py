"""Atomic text writes for the runner (stdlib; engine.io costs torch while `import engine` picks the
backend). Files get the usual umask permissions, since job files, summaries and SLURM scripts are
meant to be read by others (mkstemp alone makes them 0600)."""
import os
import os.path as osp
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text, mode=0o666):
    """Temp file in the same folder, then rename (a running SLURM array reads these files)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + osp.basename(path) + ".", suffix=".tmp")
    try:
        os.chmod(tmp, mode & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
