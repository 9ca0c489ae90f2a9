"""The checkpoint file names of Dassl's layout, in one place (stdlib only, so the scripts can use them):
``<run>/<model name>/model.pth.tar-<epoch>`` and ``model-best.pth.tar``."""
import re

BEST_MODEL_FILE = "model-best.pth.tar"
EPOCH_FILE_GLOB = "model.pth.tar-*"
_EPOCH_FILE_RE = re.compile(r"^model\.pth\.tar-(\d+)$")


def model_file(epoch=None):
    """The file name of epoch ``epoch``'s checkpoint, or of the best-validation one for None."""
    return BEST_MODEL_FILE if epoch is None else f"model.pth.tar-{epoch}"


EPOCH_FILE = model_file("<epoch>")  # how messages name an epoch checkpoint


def epoch_of(file_name):
    """The epoch of an epoch checkpoint's file name (``model.pth.tar-<epoch>``), or None for another name."""
    match = _EPOCH_FILE_RE.match(file_name)
    return int(match.group(1)) if match else None
