"""digits-tiny: deterministic pre-training, a cache that is written once and reused, real zero-shot skill.

The last tests use the real model (session fixture ``digits_tiny``): the first session on a machine
pre-trains it (about 3 minutes on 2 CPU cores) into ``$VR_CACHE_DIR`` (default ~/.cache/vr-toolkit);
later sessions load it.
"""
import os

import numpy as np
import pytest
import torch

from backbones import digits_tiny as dt
from backbones import digits_tiny_pretrain as dtp
from tests.concurrency import run_at_once
from tests.digits_fixtures import digits_tiny  # noqa: F401  (session fixture)

# a few steps of the real recipe on small batches: seconds, enough to change every weight
TINY = dt.Recipe(max_steps=2, batch_size=16)


@pytest.mark.slow
def test_pretraining_is_deterministic_and_leaves_global_state_alone():
    torch.manual_seed(5)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    before = torch.rand(1)
    torch.manual_seed(5)
    first = dt.state_dict_hash(dtp.pretrain(TINY, verbose=False))
    assert torch.equal(torch.rand(1), before)  # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    assert dt.state_dict_hash(dtp.pretrain(TINY, verbose=False)) == first
    other = dt.Recipe(max_steps=2, batch_size=16, seed=1)
    assert dt.state_dict_hash(dtp.pretrain(other, verbose=False)) != first
    untrained = dt.create_model(TINY)
    assert dt.state_dict_hash(untrained) != first


@pytest.mark.slow
def test_cache_is_written_once_and_reused(tmp_path, capsys):
    path = dt.cache_path(TINY, str(tmp_path))
    assert os.path.dirname(path) == os.path.join(str(tmp_path), "digits-tiny")
    name = os.path.basename(path)
    assert name.startswith(f"digits-tiny_{dt.VERSION}_w64-l2-e20-steps2-b16-lr0.001-s0-") and name.endswith(".pt")
    assert dt.cache_path(dt.Recipe(max_steps=2, batch_size=16, lr=2e-3), str(tmp_path)) != path

    runs = dtp.PRETRAIN_RUNS
    model = dt.load_or_build(TINY, str(tmp_path))
    out = capsys.readouterr().out
    assert runs + 1 == dtp.PRETRAIN_RUNS and os.path.isfile(path)
    assert f"cached at {path}" in out and f"saved to {path}" in out
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    mtime = os.stat(path).st_mtime_ns

    again = dt.load_or_build(TINY, str(tmp_path))
    assert runs + 1 == dtp.PRETRAIN_RUNS and os.stat(path).st_mtime_ns == mtime
    assert dt.state_dict_hash(again) == dt.state_dict_hash(model)
    assert not again.training
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_an_unreadable_cache_file_is_rebuilt(tmp_path, capsys):
    path = dt.cache_path(TINY, str(tmp_path))
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"half a file")
    runs = dtp.PRETRAIN_RUNS
    model = dt.load_or_build(TINY, str(tmp_path))
    assert "unreadable" in capsys.readouterr().out and runs + 1 == dtp.PRETRAIN_RUNS
    assert dt.state_dict_hash(dt.load_or_build(TINY, str(tmp_path))) == dt.state_dict_hash(model)


def _load_or_build(cache_dir):
    runs = dtp.PRETRAIN_RUNS
    model = dt.load_or_build(TINY, cache_dir, verbose=False)
    return dtp.PRETRAIN_RUNS - runs, dt.state_dict_hash(model)


@pytest.mark.slow
def test_concurrent_first_uses_train_once(tmp_path):
    # spawn, not fork: forking after torch's threads have started can deadlock
    got = sorted(run_at_once(_load_or_build, (str(tmp_path),), method="spawn", timeout=300), key=str)
    assert [n for n, _ in got] == [0, 1]  # one process trained, the other waited and loaded its file
    assert got[0][1] == got[1][1]
    assert got[0][1] == dt.state_dict_hash(dt.load_or_build(TINY, str(tmp_path), verbose=False))


def test_short_caption_encoding_equals_encode_text():
    model = dt.create_model(TINY)
    tokens = dt.get_tokenizer()(dt.captions(["seven", "nine"]))
    with torch.no_grad():
        assert torch.allclose(dtp.encode_captions(model, tokens), model.encode_text(tokens), atol=1e-5)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(dt.CACHE_ENV, str(tmp_path / "c"))
    assert dt.default_cache_dir() == str(tmp_path / "c")
    assert dt.cache_path().startswith(str(tmp_path / "c" / "digits-tiny") + os.sep)
    monkeypatch.delenv(dt.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dt.default_cache_dir() == str(tmp_path / "xdg" / dt.CACHE_NAME)


def test_pretraining_never_sees_the_heldout_test_digits():
    from datasets.digits_data import pretrain_indices, split_indices

    seen = set(pretrain_indices())
    assert len(seen) == 1400 and not seen & set(split_indices()["test"])


# ------------------------------------------------------------------- the real model (session fixture)
def test_digits_tiny_is_a_frozen_224_clip(digits_tiny):  # noqa: F811
    assert digits_tiny.image_size == 224 and digits_tiny.name == "digits-tiny"
    assert not digits_tiny.model.training
    assert not any(p.requires_grad for p in digits_tiny.model.parameters())
    assert tuple(digits_tiny.mean) == (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's normalisation
    assert tuple(digits_tiny.tokenizer(["a photo of the digit one."]).shape) == (1, 77)


def test_digits_tiny_zero_shot_on_heldout_digits(digits_tiny):  # noqa: F811
    acc = dt.heldout_accuracy(digits_tiny.model)
    # the target is 85%; the recipe reaches 95.2% (deterministic on a given library stack)
    assert acc >= 85.0, f"held-out zero-shot accuracy {acc:.1f}% (6 templates)"
    # the template the VR methods use is not a pre-training caption, yet it transfers (91.2% measured);
    # the room to learn comes from the shifted Digits variants (tests/test_integration_digits.py)
    plain = dt.heldout_accuracy(digits_tiny.model, ("This is a photo of {}.",))
    assert plain >= 85.0, f"'This is a photo of {{}}.': {plain:.1f}%"


def test_digits_tiny_through_the_loader_transform(digits_tiny, tmp_path):  # noqa: F811
    """Zero-shot on PNG files read back from the dataset folder equals the in-memory number."""
    from PIL import Image

    from datasets.digits_data import CLASSNAMES, build_digits, load_arrays, split_indices

    folder = build_digits(str(tmp_path), "none", verbose=False)
    test = split_indices()["test"][:100]
    labels = load_arrays()[1][list(test)]
    files = [os.path.join(folder, "images", CLASSNAMES[y], f"{i:04d}.png") for i, y in zip(test, labels, strict=False)]
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    assert np.array_equal(images, dt.rendered_digits(test))
    acc = dt.zero_shot_accuracy(digits_tiny.model, images, labels, CLASSNAMES)
    assert acc >= 85.0  # 94% measured on these 100 digits
