"""Black-box reprogramming works on the low-contrast digits with digits-tiny (CPU, no download).

Each black-box trainer, with its demo config (seed 1), beats zero-shot CLIP by ``MARGIN`` points, and the
training queries it records are exactly what its schedule implies: 160 training images (16 shots x 10 digits)
x prompts x evaluations per step, per epoch (DVP-cls's statistics epoch: one query per image and prompt). Each
margin sits below the smaller gain measured with seeds 1 and 2 (benchmarks/README.md, 'Black-box VR on the
digits demo').
"""

import pytest

from tests.digits_fixtures import digits_demo_runs, digits_tiny  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow  # 1-5 minutes a run on one core

# points over zero-shot (12.09%), below the gains measured with seeds 1 and 2: BAR +36.8 / +24.4, BlackBoxAR
# +4.5 / +23.4, BlackBoxDVP_CLS +7.3 / +8.3, BlackVIP +22.9 / +17.1
MARGIN = {"BAR": 15.0, "BlackBoxAR": 2.5, "BlackBoxDVP_CLS": 4.0, "BlackVIP": 10.0}
SEEDS = (1,)
IMAGES = 160


@pytest.mark.parametrize("trainer", sorted(MARGIN))
def test_black_box_reprogramming_beats_zero_shot_with_the_queries_its_schedule_implies(digits_demo_runs, trainer):
    for seed in SEEDS:
        _, zero_shot = digits_demo_runs("ZeroshotCLIP", seed)
        t, acc = digits_demo_runs(trainer, seed)
        record = t.extra_results()["black_box"]
        print(f"{trainer} seed {seed}: {acc:.2f}% (zero-shot {zero_shot:.2f}%), "
              f"{record['train_image_queries']:,} training queries")
        epochs, v = int(t.cfg.OPTIM.MAX_EPOCH), t.num_prompts()
        per_step = {"BAR": t.cfg.TRAINER.BLACKBOX.Q + 1}.get(trainer, 2 * t.cfg.TRAINER.BLACKBOX.SP_AVG)
        expected = [IMAGES * v * (1 if e < t.STATS_EPOCHS else per_step) for e in range(epochs)]
        assert record["train_image_queries_per_epoch"] == expected
        assert record["train_image_queries"] == sum(expected) and not record["stopped_by_budget"]
        assert acc >= zero_shot + MARGIN[trainer], f"{trainer} seed {seed}: {acc:.1f}% vs zero-shot {zero_shot:.1f}%"
