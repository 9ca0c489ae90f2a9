"""CoOp's few-shot cache files (split_fewshot/shot_{K}-seed_{S}.pkl), readable by either backend and by CoOp.

Dassl's pickles name ``dassl.data.datasets.base_dataset.Datum``; caches written by earlier builtin runs name
``engine.builtin.data.datasets.Datum``. Both classes store the same attributes, so loading maps either class
path to the Datum of the active backend. Writing always names Dassl's class path (on the builtin backend too),
so a data root shared with CoOp itself holds only caches that CoOp's plain ``pickle.load`` reads.
Writes are atomic (parallel runs share a data root).

A cache written here also holds ``"identity"``: ``{"split_sha256", "train_sha256"[, "val_sha256"]}`` (the
split it was drawn from and the draw itself, engine/data_identity.py); :func:`read_cache_identity` reads it
without the backend (stdlib only: the sweep's done check uses it). CoOp's ``pickle.load`` ignores the key.

Loading is restricted: a pickle can run any code it names when loaded, so only the classes a cache may hold
(Datum under its known paths, plain containers and numbers, numpy scalars) are resolved; anything else
stops the load with an error naming the class, before it can run.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

DASSL_DATUM = ("dassl.data.datasets.base_dataset", "Datum")
BUILTIN_DATUM = ("engine.builtin.data.datasets", "Datum")
DATUM_PATHS = {DASSL_DATUM, ("dassl.data.datasets", "Datum"), BUILTIN_DATUM}


# What else a cache written by Dassl, CoOp or this project may reference (protocol 0-5 pickles of a dict of
# lists of Datum, whose fields are strings and numbers, possibly numpy integers).
SAFE_GLOBALS = frozenset({
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes",
                              "bool", "complex", "object")
} | {("collections", "OrderedDict"), ("copyreg", "_reconstructor"), ("_codecs", "encode"),
     ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")})


class UnsafeCacheError(pickle.UnpicklingError):
    """A cache file names a class outside the allow-list (a corrupt or hostile file)."""


class _DatumUnpickler(pickle.Unpickler):
    def datum_class(self):
        from engine import Datum

        return Datum

    def find_class(self, module, name):
        if (module, name) in DATUM_PATHS:
            return self.datum_class()
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeCacheError(f"it references {module}.{name}, which a few-shot cache never holds (only Datum, "
                               f"containers and numbers are loaded); it was not loaded")


class _DasslNamingPickler(pickle._Pickler):
    """Pickles the builtin Datum class under Dassl's module path.

    The C pickler checks that a class is importable under the name it writes, which Dassl's path is not
    when Dassl is absent; the pure-Python pickler lets this one class reference be written by hand.
    Everything else is pickled as usual.
    """

    def save_global(self, obj, name=None):
        from engine.builtin.data.datasets import Datum

        if obj is Datum:
            module, qualname = DASSL_DATUM
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_fewshot_cache(data: dict[str, Any]) -> bytes:
    """The bytes of a cache file holding ``data`` (Datum classes named as Dassl names them)."""
    buf = io.BytesIO()
    _DasslNamingPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(data)
    return buf.getvalue()


def load_fewshot_cache(path: str) -> dict[str, Any]:
    """Return the pickled ``{"train": [...], "val": [...]}`` dict with Datum objects of this backend."""
    with open(path, "rb") as f:
        return _DatumUnpickler(io.BytesIO(f.read())).load()


class _PlainDatum:
    """Stands for Datum when only a cache's identity is read (its attributes are set, nothing is checked)."""


class _PeekUnpickler(_DatumUnpickler):
    def datum_class(self):
        return _PlainDatum


def read_cache_identity(path: str) -> dict[str, Any] | None:
    """The ``"identity"`` dict a cache records, or None (a cache written by CoOp or older code); stdlib only.
    Raises OSError / pickle errors for a file that cannot be read."""
    with open(path, "rb") as f:
        data = _PeekUnpickler(io.BytesIO(f.read())).load()
    identity = data.get("identity") if isinstance(data, dict) else None
    return dict(identity) if isinstance(identity, dict) else None


def save_fewshot_cache(path: str, data: dict[str, Any]) -> None:
    """Pickle ``data`` to ``path`` atomically (temporary file, then rename)."""
    from .io import atomic_write_bytes

    atomic_write_bytes(path, dumps_fewshot_cache(data))
