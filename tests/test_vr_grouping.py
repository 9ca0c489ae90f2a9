"""Grouping descriptions into prompts: causes, k-means (deterministic, recorded), random."""
import pytest
import sklearn
import torch

from vr.grouping import cause_groups, kmeans_groups, random_groups


def _blobs():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 16) * 5
    return torch.cat([c + 0.1 * torch.randn(10, 16, generator=gen) for c in centres])  # 3 blobs of 10


def test_cause_groups_are_cause_major_within_class():
    assert cause_groups(2, 2, 3).tolist() == [0, 0, 1, 1, 2, 2] * 2


def test_kmeans_is_deterministic_recorded_and_finds_blobs():
    emb = _blobs()
    a, rec = kmeans_groups(emb, 3, n_init=4, random_state=0)
    b, _ = kmeans_groups(emb, 3, n_init=4, random_state=0)
    assert torch.equal(a, b)
    assert rec["n_init"] == 4 and rec["random_state"] == 0 and rec["n_clusters"] == 3
    assert rec["sklearn_version"] == sklearn.__version__ and sorted(rec["sizes"]) == [10, 10, 10]
    for blob in range(3):  # every blob is one cluster
        assert len(set(a[blob * 10:(blob + 1) * 10].tolist())) == 1


def test_kmeans_default_is_the_references_call_on_current_scikit_learn():
    """The reference calls KMeans(n_clusters=v, random_state=0): 1 initialisation under scikit-learn >= 1.4,
    10 before. The default (1, explicit and recorded) gives its partition; DVP_CLS's config says 1 too."""
    from sklearn.cluster import KMeans

    import engine
    from engine import get_cfg_default

    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(60, 16, generator=gen), dim=-1)  # no clear clusters
    labels, rec = kmeans_groups(emb, 3)
    assert rec["n_init"] == 1
    one = KMeans(n_clusters=3, random_state=0, n_init=1).fit(emb.numpy()).labels_
    ten = KMeans(n_clusters=3, random_state=0, n_init=10).fit(emb.numpy()).labels_
    assert labels.tolist() == one.tolist() and labels.tolist() != ten.tolist()  # the choice matters here
    if tuple(int(x) for x in sklearn.__version__.split(".")[:2]) >= (1, 4):
        reference = KMeans(n_clusters=3, random_state=0).fit(emb.numpy()).labels_
        assert labels.tolist() == reference.tolist()
    cfg = get_cfg_default()
    engine.extend_cfg(cfg)
    assert cfg.TRAINER.DVP_CLS.KMEANS_N_INIT == 1


def test_more_clusters_than_descriptions_is_an_error():
    with pytest.raises(ValueError, match="Cannot form 7 k-means clusters from 6 descriptions.*TRAINER.DVP_CLS.V"):
        kmeans_groups(torch.randn(6, 4), 7)
    with pytest.raises(ValueError, match="from 1 distinct descriptions"):
        kmeans_groups(torch.ones(6, 4), 2)


def test_random_groups_are_seeded_and_balanced():
    a, rec = random_groups(10, 3, seed=5)
    b, _ = random_groups(10, 3, seed=5)
    c, _ = random_groups(10, 3, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(rec["sizes"]) == [3, 3, 4]
    with pytest.raises(ValueError, match="more groups than descriptions"):
        random_groups(2, 3)
