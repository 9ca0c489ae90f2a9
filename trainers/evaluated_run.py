"""The checkpoint ``--eval-only --model-dir`` evaluates, known before its trainer is built.

train.py reads its run record first (``evaluated_record``) and builds the trainer inside ``evaluating``; a
trainer whose model depends on the trained run (DVP_CLS takes its v from it) reads ``evaluated_checkpoint()``.
"""
import contextlib
import contextvars
import glob
import os.path as osp

from engine.checkpoint_files import model_file

from .run_folders import read_checkpoint


def evaluated_record(model_dir, epoch=None):
    """(path, run record) of the checkpoint ``--eval-only --model-dir`` loads (the first model's; epoch None:
    model-best), or (path or None, None); read before the model is built (DVP_CLS takes its v from it)."""
    found = sorted(glob.glob(osp.join(model_dir, "*", model_file(epoch))))
    if not found:
        return None, None
    record = read_checkpoint(found[0]).get("run")
    return found[0], record if isinstance(record, dict) else None


# The record of the checkpoint being evaluated, while train.py builds the trainer (see ``evaluating``).
_EVALUATED = contextvars.ContextVar("evaluated_checkpoint", default=(None, None))


@contextlib.contextmanager
def evaluating(path, record):
    """Within: ``evaluated_checkpoint()`` is (path, record) of the checkpoint the trainer will load."""
    token = _EVALUATED.set((path, record))
    try:
        yield
    finally:
        _EVALUATED.reset(token)


def evaluated_checkpoint():
    return _EVALUATED.get()
