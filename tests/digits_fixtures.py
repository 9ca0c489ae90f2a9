"""Session fixtures for tests that need real (pre-trained) CLIP behaviour without downloads.

``digits_tiny``: the ``digits-tiny`` backbone (``backbones.load_clip``), built once per machine and
cached in ``$VR_CACHE_DIR`` (default ``~/.cache/vr-toolkit``): the first session that needs it
pre-trains it (about 3 minutes on 2 CPU cores), later sessions load it in a second.
``digits_root``: a data root holding the Digits dataset (shift "none"), written once per session.
"""
import pytest


@pytest.fixture(scope="session")
def digits_tiny():
    from backbones import load_clip

    return load_clip("digits-tiny")


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    from datasets.digits_data import build_digits

    root = str(tmp_path_factory.mktemp("digits_data"))
    build_digits(root, "none", verbose=False)
    return root
