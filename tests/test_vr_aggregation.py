"""AttrVR's top-k mean and lambda mixing on hand examples; identity and mean."""
import pytest
import torch

from vr.aggregation import Identity, LambdaMix, Mean, TopKMean


def test_topk_mean_sorts_descending_and_averages_top_k():
    z = torch.tensor([[[1., 7., 3., 5.], [2., 2., 9., 0.]]])  # (B=1, C=2, m=4)
    assert torch.allclose(TopKMean(3)(z), torch.tensor([[(7 + 5 + 3) / 3, (9 + 2 + 2) / 3]]))
    assert torch.allclose(TopKMean(1)(z), torch.tensor([[7., 9.]]))


def test_lambda_mixes_des_and_dist_sets():
    des = torch.tensor([[[1., 7., 3.], [0., 0., 6.]]])
    dist = torch.tensor([[[4., 4., 1.], [3., 9., 0.]]])
    z = torch.cat([des, dist], dim=-1)  # slots: 3 des then 3 dist
    agg = LambdaMix(TopKMean(2), TopKMean(2), split=3, lam=0.25)
    agg.check(2, 6)
    want = 0.25 * torch.tensor([[5., 3.]]) + 0.75 * torch.tensor([[4., 6.]])
    assert torch.allclose(agg(z), want)


def test_identity_and_mean():
    z = torch.tensor([[[2.], [5.]]])
    assert torch.equal(Identity()(z), torch.tensor([[2., 5.]]))
    assert torch.allclose(Mean()(torch.tensor([[[1., 2., 6.]]])), torch.tensor([[3.]]))


def test_clear_errors():
    with pytest.raises(ValueError, match="k = 3 needs at least k descriptions.*m = 2"):
        TopKMean(3).check(5, 2)
    with pytest.raises(ValueError, match="k = 4 needs at least k.*m = 3"):
        LambdaMix(TopKMean(4), TopKMean(4), split=3).check(2, 6)
    with pytest.raises(ValueError, match="lambda must lie in \\[0, 1\\]"):
        LambdaMix(TopKMean(1), TopKMean(1), split=1, lam=1.5)
    with pytest.raises(ValueError, match="one text per class"):
        Identity().check(3, 2)


def test_text_weights_are_what_a_class_logit_sums_and_a_checkpoint_rebuilds_them():
    """Explanations and plots read the weight of each text through text_weights (None where the weights
    depend on the image) and a checkpoint's PRM and text table through from_state, not raw keys."""
    from vr import PRM, TextTable, description_table

    z = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(0))
    prm = PRM(3, 4, topk=2)
    prm.observe(z, torch.tensor([0, 1, 2, 0, 1]))
    prm.end_epoch()
    for agg in (prm, Mean()):
        weights = agg.text_weights(3, 4)
        assert weights.shape == (3, 4) and torch.allclose((z * weights).sum(-1), agg(z), atol=1e-6)
    assert torch.equal(Identity().text_weights(3, 1), torch.ones(3, 1))
    assert TopKMean(2).text_weights(3, 4) is None
    assert LambdaMix(TopKMean(1), TopKMean(1), split=2).text_weights(3, 4) is None
    assert PRM.WEIGHT_KIND == "PRM weight" and Mean.WEIGHT_KIND == "uniform weight (mean)"
    with pytest.raises(ValueError, match="PRM built for"):
        prm.text_weights(3, 5)

    table = description_table(["a", "b", "c"], [[[f"text {c} {j}" for j in range(4)] for c in range(3)]],
                              num_prompts=2)
    table.set_prompts(torch.arange(12) % 2)
    state = {**{f"aggregation.{k}": v for k, v in prm.state_dict().items()},
             **{f"text_table.{k}": v for k, v in table.state_dict().items()}}
    again = PRM.from_state(state)
    assert torch.equal(again.text_weights(3, 4), prm.weight) and torch.equal(again.text_counts(), prm.last_counts)
    rebuilt = TextTable.from_state(state)
    assert torch.equal(rebuilt.prompt_grid(), table.prompt_grid()) and rebuilt.texts == table.texts
    with pytest.raises(ValueError, match="holds no PRM"):
        PRM.from_state({k: v for k, v in state.items() if not k.startswith("aggregation.")})
