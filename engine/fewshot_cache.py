"""CoOp's few-shot cache files (split_fewshot/shot_{K}-seed_{S}.pkl), readable by either backend.

Dassl's pickles name ``dassl.data.datasets.base_dataset.Datum``; the builtin engine's name
``engine.builtin.data.datasets.Datum``. Both classes store the same attributes, so loading maps either
class path to the Datum of the active backend. Writes are atomic (parallel runs share a data root).
"""
import io
import pickle

DATUM_PATHS = {
    ("dassl.data.datasets.base_dataset", "Datum"),
    ("dassl.data.datasets", "Datum"),
    ("engine.builtin.data.datasets", "Datum"),
}


class _DatumUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in DATUM_PATHS:
            from engine import Datum

            return Datum
        return super().find_class(module, name)


def load_fewshot_cache(path):
    """Return the pickled ``{"train": [...], "val": [...]}`` dict with Datum objects of this backend."""
    with open(path, "rb") as f:
        return _DatumUnpickler(io.BytesIO(f.read())).load()


def save_fewshot_cache(path, data):
    """Pickle ``data`` to ``path`` atomically (temporary file, then rename)."""
    from .io import atomic_pickle_dump

    atomic_pickle_dump(path, data)
