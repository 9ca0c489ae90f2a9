"""Label mapping (vr/mapping.py) pinned to hand computations on tiny tensors: ILM's greedy one-to-one
assignment, BLM's smoothed counts, BLM+'s top-k rule, and the lifecycle shared with the PRM."""
import pytest
import torch

from vr import PRM, BayesianMapping, BayesianTopKMapping, Mean, OneToOneMapping, TextTable, description_table

# 3 source texts x 2 classes
COUNTS = torch.tensor([[3.0, 1.0],
                       [0.0, 2.0],
                       [1.0, 1.0]], dtype=torch.float64)


def test_ilm_greedy_takes_the_largest_count_then_removes_its_row_and_column():
    assert OneToOneMapping.greedy(COUNTS).tolist() == [0, 1]  # (0, 0) = 3 first, then (1, 1) = 2
    # ties: the first maximum in row-major order wins; source 0 may serve only one class
    ties = torch.tensor([[2.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    assert OneToOneMapping.greedy(ties).tolist() == [0, 2]  # (0, 0) first; row 0 gone, column 1's max is row 2
    everything_zero = torch.zeros(4, 3)
    assert OneToOneMapping.greedy(everything_zero).tolist() == [0, 1, 2]  # diagonal: row-major first zeros


def test_ilm_counts_argmaxes_and_maps_by_gather():
    ilm = OneToOneMapping(3, 2, initial=[0, 1])
    z = torch.tensor([[5.0, 1.0, 0.0], [0.0, 1.0, 4.0], [0.0, 1.0, 4.0], [0.0, 3.0, 1.0]])
    ilm.observe(z, torch.tensor([0, 0, 1, 1]))
    assert ilm.counts.tolist() == [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    ilm.end_epoch()
    # counts (0,0)=1 first (row-major), row 0 and column 0 leave; then (1,1)=1 before (2,1)=1
    assert ilm.weight.argmax(0).tolist() == [0, 1]
    assert torch.equal(ilm(z), z[:, [0, 1]])
    assert torch.equal(ilm(z), z @ ilm.weight)  # the gather is the one-hot product exactly


def test_blm_smooths_each_source_row_then_normalises_each_class_column():
    blm = BayesianMapping(3, 2, initial=[0, 1], laplace=1.0)
    omega = blm.estimate(COUNTS)
    # rows: counts / (row sum + 1): [3/5, 1/5], [0, 2/3], [1/3, 1/3]
    col0 = torch.tensor([3 / 5, 0.0, 1 / 3], dtype=torch.float64)
    col1 = torch.tensor([1 / 5, 2 / 3, 1 / 3], dtype=torch.float64)
    expected = torch.stack([col0 / col0.sum(), col1 / col1.sum()], dim=1)
    assert torch.allclose(omega, expected, atol=1e-12)
    assert torch.allclose(omega.sum(0), torch.ones(2, dtype=torch.float64))
    z = torch.randn(4, 3)
    blm.weight.copy_(omega.float())
    assert torch.allclose(blm(z), z @ omega.float())  # raw scaled logits times omega


def test_blm_plus_counts_the_top_k_probabilities_of_each_sample():
    plus = BayesianTopKMapping(4, 2, initial=[0, 1], laplace=1.0, topk=2)
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 1.0]])
    p = torch.softmax(z, dim=1)
    plus.observe(z, torch.tensor([1, 1]))
    expected = torch.zeros(4, 2, dtype=torch.float64)
    expected[0, 1], expected[1, 1] = p[0, 0], p[0, 1]  # sample 0 keeps sources 0 and 1
    expected[2, 1], expected[3, 1] = p[1, 2], p[1, 3]  # sample 1 keeps sources 2 and 3
    assert torch.allclose(plus.counts, expected, atol=1e-7)
    assert plus.counts[:, 0].sum() == 0


def test_end_epoch_reestimates_resets_and_keeps_the_initial_column_of_a_class_without_counts():
    blm = BayesianMapping(3, 2, initial=[2, 1])
    assert blm.weight.argmax(0).tolist() == [2, 1]  # before any estimate: the initial mapping
    blm.observe(torch.tensor([[0.0, 5.0, 0.0]]), torch.tensor([1]))
    used = blm.end_epoch()
    assert used.tolist() == [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    assert blm.weight[:, 0].tolist() == [0.0, 0.0, 1.0]  # class 0 had no samples: initial column
    assert blm.weight[:, 1].tolist() == [0.0, 1.0, 0.0]
    assert blm.counts.sum() == 0 and int(blm.epochs_estimated) == 1
    assert torch.equal(blm.text_counts(), used)
    fresh = BayesianMapping(3, 2, initial=[2, 1])
    fresh.load_state_dict(blm.state_dict())  # the mapping travels with checkpoints
    assert torch.equal(fresh.weight, blm.weight)


def test_fewer_source_texts_than_classes_is_a_clear_error():
    with pytest.raises(ValueError, match="at least as many source texts as target classes, got 2 source texts "
                                         "for 3 classes"):
        BayesianMapping(2, 3, initial=[0, 1, 1])


def test_the_aggregation_and_the_table_layout_must_agree():
    free = TextTable.free([["a"], ["b"], ["c"]], [0, 1, -1], num_classes=2)
    assert not free.blocked and free.logit_shape(5) == (5, 3)
    assert free.slots.tolist() == [0, 0, 0] and free.classes.tolist() == [0, 1, -1]
    OneToOneMapping(3, 2, initial=[0, 1]).check_table(free)
    with pytest.raises(ValueError, match="reads a block of texts per class"):
        Mean().check_table(free)
    blocks = description_table(["x", "y"], [{"x": ["x1", "x2"], "y": ["y1", "y2"]}])
    with pytest.raises(ValueError, match="build it with vr.TextTable.free"):
        OneToOneMapping(4, 2, initial=[0, 1]).check_table(blocks)
    with pytest.raises(ValueError, match="only in the class-block layout"):
        free.prompt_grid()


def test_class_weights_name_the_texts_of_a_class_logit():
    blm = BayesianMapping(3, 2, initial=[0, 1])
    blm.weight.copy_(blm.estimate(COUNTS).float())
    free = TextTable.free([["a"], ["b"], ["c"]], [0, 1, 0], num_classes=2)
    entries, w = blm.class_weights(free, 0)
    assert entries.tolist() == [0, 2] and torch.allclose(w, blm.weight[[0, 2], 0])  # source 1 has weight 0
    prm = PRM(2, 2, topk=1)
    blocks = description_table(["x", "y"], [{"x": ["x1", "x2"], "y": ["y1", "y2"]}])
    entries, w = prm.class_weights(blocks, 1)
    assert entries.tolist() == [2, 3] and w.tolist() == [0.5, 0.5]


def test_aggregations_are_built_by_registered_name_with_their_config_keys():
    from yacs.config import CfgNode as CN

    from vr import aggregation_from_node, aggregation_kinds

    assert {"identity", "mean", "topk_mean", "prm", "ilm", "blm", "blm_plus"} <= set(aggregation_kinds())
    free = TextTable.free([[f"t{i}"] for i in range(40)], [i % 20 for i in range(40)], num_classes=20)
    plus = aggregation_from_node("BLM_plus", free, CN({"LAPLACE": 0.5, "TOPK_RATIO": 0.15}))
    assert isinstance(plus, BayesianTopKMapping) and plus.topk == 3 and plus.laplace == 0.5  # floor(0.15 x 20)
    assert plus.initial.tolist() == list(range(20))  # each class starts at the first text naming it
    with pytest.raises(ValueError, match='Unknown aggregation "blm_pls" \\(TRAINER.X.AGGREGATION\\). Did you mean '
                                         '"blm_plus"\\? Registered kinds: .*prm'):
        aggregation_from_node("blm_pls", free, CN(), key="TRAINER.X.AGGREGATION")
    from vr import register_aggregation

    with pytest.raises(KeyError, match='aggregation named "blm" is already registered by vr.mapping.BayesianMapping'):
        register_aggregation(type("Again", (BayesianMapping,), {"kind": "blm"}))


def test_a_mapping_starts_from_the_first_text_naming_each_class():
    table = TextTable.free([["x"], ["b0"], ["a0"], ["b1"], ["y"]], [-1, 1, 0, 1, -1], num_classes=3)
    assert table.first_entries() == [2, 1, 0]  # class 2 has no text of its own: the first free entry
    assert OneToOneMapping.for_table(table).initial.tolist() == [2, 1, 0]
