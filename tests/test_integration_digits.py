"""Reprogramming really works: VP, AR and AttrVR beat zero-shot on a shifted Digits task with digits-tiny.

(DVP-cse, DVP-cls and the broken-PRM check are not here yet: see the issue notes.)

digits-tiny is pre-trained once per machine and cached (tests/digits_fixtures.py); the runs here use the
demo configs with a shorter schedule, in-process, on the CPU.
"""
import contextlib
import io

import pytest

import engine
import train
from tests.digits_fixtures import digits_tiny  # noqa: F401  (session fixture)

DATASET = "digits_lowcontrast"
SHOTS = 16
EPOCHS = {"VP": 6, "AR": 6, "AttrVR": 6}
MARGIN = 5.0  # percentage points over zero-shot (measured here: AR +6.8 after 6 epochs; VP and AttrVR more)


def _cfg(trainer, root, out, epochs):
    args = train.build_parser().parse_args([
        "--root", root, "--trainer", trainer, "--seed", "1", "--output-dir", out,
        "--dataset-config-file", f"configs/datasets/{DATASET}.yaml",
        "--config-file", f"configs/trainers/{trainer}/demo.yaml",
        "DATASET.NUM_SHOTS", str(SHOTS), "OPTIM.MAX_EPOCH", str(epochs), "DATALOADER.NUM_WORKERS", "0",
        "TRAIN.PRINT_FREQ", "1000", "USE_CUDA", "False"])
    return train.setup_cfg(args)


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory, digits_tiny):  # noqa: F811
    """Train each method once (quietly) and keep the trainers: {name: (trainer, test accuracy)}."""
    root = str(tmp_path_factory.mktemp("digits_root"))
    out = tmp_path_factory.mktemp("digits_runs")
    runs = {}

    def run(trainer):
        if trainer not in runs:
            cfg = _cfg(trainer, root, str(out / trainer), EPOCHS.get(trainer, 1))
            with contextlib.redirect_stdout(io.StringIO()):
                t = engine.build_trainer(cfg)
                if trainer != "ZeroshotCLIP":
                    t.train()  # ends with the last-epoch test
                acc = t.test()
            runs[trainer] = (t, acc)
        return runs[trainer]

    return run


@pytest.mark.parametrize("trainer", ["VP", "AR", "AttrVR"])
def test_reprogramming_beats_zero_shot(digits_runs, trainer):
    _, zero_shot = digits_runs("ZeroshotCLIP")
    _, acc = digits_runs(trainer)
    assert acc >= zero_shot + MARGIN, f"{trainer}: {acc:.1f}% vs zero-shot {zero_shot:.1f}%"
