"""Session fixtures for tests that need real (pre-trained) CLIP behaviour without downloads.

``digits_tiny``: the ``digits-tiny`` backbone (``backbones.load_clip``), built once per machine and
cached in ``$VR_CACHE_DIR`` (default ``~/.cache/vr-toolkit``): the first session that needs it
pre-trains it (about 3 minutes on 2 CPU cores), later sessions load it in a second.
``digits_root``: a data root holding the Digits dataset (shift "none"), written once per session.
:func:`train_and_test`: one run of a trainer's demo config on a Digits variant (the digits-margin tests);
``digits_demo_runs``: those runs, each once per test module and arguments.
"""
import contextlib
import io

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


@pytest.fixture(scope="module")
def digits_demo_runs(tmp_path_factory, digits_tiny):
    """run(trainer, seed=1, **train_and_test keywords) -> (trainer, test accuracy), each run once per module."""
    root, out, runs = str(tmp_path_factory.mktemp("digits_root")), tmp_path_factory.mktemp("digits_runs"), {}

    def run(trainer, seed=1, **settings):
        key = (trainer, seed, tuple(sorted(settings.items())))
        if key not in runs:
            runs[key] = train_and_test(root, out / f"run{len(runs)}", trainer, seed, **settings)
        return runs[key]

    return run


def train_and_test(root, out, trainer, seed=1, dataset="digits_lowcontrast", shots=16, opts=(), patch=None):
    """Train ``trainer`` with its demo config (``opts`` override it) on a Digits variant and test it, quietly,
    through train.py's config path and seeded as train.py seeds (the caller's RNG state is untouched); ``patch``:
    a context manager active during the run. -> (trainer, test accuracy)."""
    import engine
    import train
    from engine.distributed import seeded_rngs

    args = train.build_parser().parse_args([
        "--root", str(root), "--trainer", trainer, "--seed", str(seed), "--output-dir", str(out),
        "--dataset-config-file", f"configs/datasets/{dataset}.yaml",
        "--config-file", f"configs/trainers/{trainer}/demo.yaml", "DATASET.NUM_SHOTS", str(shots),
        "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "1000", "USE_CUDA", "False", *[str(o) for o in opts]])
    cfg = train.setup_cfg(args)
    with patch or contextlib.nullcontext(), contextlib.redirect_stdout(io.StringIO()), seeded_rngs(cfg.SEED):
        built = engine.build_trainer(cfg)
        if trainer != "ZeroshotCLIP":
            built.train()  # ends with the last-epoch test
        return built, built.test()
