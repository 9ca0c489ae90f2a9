"""The PRM on a hand-computed example: uniform start, counting, row sums, block structure, guards."""
import pytest
import torch

from vr.prm import PRM

# C = 2 classes, M' = 4 descriptions per class, k = 2; three samples, all of class 0.
Z = torch.tensor([
    [[1., 5., 3., 0.], [9., 9., 9., 9.]],  # own block top-2: slots 1, 2
    [[4., 2., 0., 9.], [0., 0., 0., 0.]],  # slots 3, 0
    [[0., 7., 1., 6.], [8., 8., 8., 8.]],  # slots 1, 3
])
Y = torch.tensor([0, 0, 0])


def test_starts_uniform_within_own_class_block():
    prm = PRM(2, 4, topk=2)
    omega = prm.omega()
    assert omega.shape == (8, 2)
    want = torch.zeros(8, 2)
    want[:4, 0] = 0.25
    want[4:, 1] = 0.25
    assert torch.equal(omega, want)
    assert torch.allclose(prm(Z), Z.mean(-1))  # uniform = mean aggregation


def test_counts_topk_of_true_class_and_reestimates_by_counting():
    prm = PRM(2, 4, topk=2)
    prm.observe(Z, Y)
    assert prm.statistics().tolist() == [[1, 2, 1, 2], [0, 0, 0, 0]]
    used = prm.end_epoch()
    assert used.tolist() == [[1, 2, 1, 2], [0, 0, 0, 0]]
    omega = prm.omega()
    assert torch.allclose(omega[:4, 0], torch.tensor([1 / 6, 2 / 6, 1 / 6, 2 / 6]))
    assert torch.equal(omega[4:, 0], torch.zeros(4)) and torch.equal(omega[:4, 1], torch.zeros(4))
    assert torch.allclose(omega[4:, 1], torch.full((4,), 0.25))  # class without samples: uniform
    assert torch.allclose(omega.sum(0), torch.ones(2))  # each class's distribution sums to 1
    assert prm.statistics().sum() == 0  # counts reset for the next epoch
    assert prm.last_counts.tolist() == [[1, 2, 1, 2], [0, 0, 0, 0]]
    # class logits = z.flatten(1) @ omega
    assert torch.allclose(prm(Z), Z.flatten(1) @ omega, atol=1e-6)
    assert torch.allclose(prm(Z)[0, 0], torch.tensor((1 * 1 + 5 * 2 + 3 * 1 + 0 * 2) / 6))


def test_statistics_merge_like_an_all_reduce_and_state_is_plain_tensors():
    a, b, whole = PRM(2, 4, 2), PRM(2, 4, 2), PRM(2, 4, 2)
    a.observe(Z[:2], Y[:2])
    b.observe(Z[2:], Y[2:])
    whole.observe(Z, Y)
    a.add_statistics(b.statistics())
    assert torch.equal(a.statistics(), whole.statistics())
    a.end_epoch()
    whole.end_epoch()
    state = a.state_dict()
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    assert set(state) == {"weight", "counts", "last_counts", "epochs_estimated"}
    fresh = PRM(2, 4, 2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.omega(), whole.omega())
    assert not any(p.requires_grad for p in fresh.parameters())  # omega is never a gradient parameter
    assert len(list(fresh.parameters())) == 0


def test_contribution_table_sums_weights_per_prompt():
    prm = PRM(2, 4, 2)
    prm.observe(Z, Y)
    prm.end_epoch()
    grid = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])  # prompt of each (class, slot)
    table = prm.contributions(grid, 2)
    assert torch.allclose(table, torch.tensor([[3 / 6, 3 / 6], [0.25, 0.75]]))


def test_topk_larger_than_descriptions_is_an_error():
    with pytest.raises(ValueError, match="PRM top-k must lie in \\[1, M'\\].*k = 5.*PRM_TOPK"):
        PRM(2, 4, topk=5)


def test_half_precision_product_is_the_references_fp16_matmul_unless_precise():
    """Under fp16 autocast the reference computes ``fx @ prob_y_s`` in fp16 (omega rounded to fp16, fp16
    result); PRECISE promotes to fp32. On a CPU with explicit half tensors (autocast hands the PRM fp16 z)."""
    gen = torch.Generator().manual_seed(0)
    z = (torch.randn(64, 5, 6, generator=gen) * 8 + 20).half()  # description logits of CLIP's size
    counts = torch.randint(0, 7, (5, 6), generator=gen)
    reference, precise = PRM(5, 6, topk=3), PRM(5, 6, topk=3, precise=True)
    for prm in (reference, precise):
        prm.add_statistics(counts)
        prm.end_epoch()  # weights like 2/13: not exact in fp16
    want = z.flatten(1) @ reference.omega().half()  # the reference's product, in half precision
    got = reference(z)
    assert got.dtype == torch.float16 and torch.equal(got, want)
    exact = z.float().flatten(1) @ precise.omega().double().float()
    assert precise(z).dtype == torch.float32 and torch.allclose(precise(z), exact, atol=1e-5)
    assert (got.float() - precise(z)).abs().max() > 1e-3  # fp16 rounding of omega and of the result shows
