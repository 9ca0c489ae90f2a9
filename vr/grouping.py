"""Which visual prompt scores which description: by cause, by k-means cluster, or at random.

Every function returns one prompt index per description (a LongTensor), in the order of the
descriptions given, plus, where a choice was made, a small record of how (saved with the run).
"""

import numpy as np
import torch


def cause_groups(num_classes: int, m: int, v: int) -> torch.Tensor:
    """DVP-cse: class-major slots ``cause * m + j``; cause i is scored by prompt i."""
    slots = torch.arange(m * v) // m
    return slots.repeat(num_classes)


def _check(n: int, v: int, what: str):
    if int(v) < 1:
        raise ValueError(f"The number of prompts v must be at least 1, got {v}.")
    if int(v) > n:
        raise ValueError(
            f"Cannot form {v} {what} from {n} descriptions: more groups than descriptions. Lower v "
            f"(TRAINER.DVP_CLS.V) or raise m (TRAINER.DVP_CLS.M).")


def kmeans_groups(embeddings: torch.Tensor, v: int, n_init: int = 1, random_state: int = 0,
                  return_centroids: bool = False):
    """DVP-cls: scikit-learn KMeans(n_clusters=v, random_state, n_init) on all C*m description embeddings.

    ``n_init`` is explicit because scikit-learn changed its default in 1.4: the reference's
    ``KMeans(n_clusters=v, random_state=0)`` runs 10 initialisations under scikit-learn < 1.4 and 1
    ('auto' with k-means++) under >= 1.4, so 1 is the reference as it runs today; pass 10 for the older
    behaviour. The returned record holds it, the sklearn version, inertia and cluster sizes.
    ``return_centroids``: also return the (v, D) centroids (kept to place other classes' descriptions).
    """
    import sklearn
    from sklearn.cluster import KMeans

    feats = embeddings.detach().float().cpu().numpy()
    _check(feats.shape[0], v, "k-means clusters")
    distinct = np.unique(feats, axis=0).shape[0]
    if distinct < v:
        raise ValueError(
            f"Cannot form {v} k-means clusters from {distinct} distinct descriptions. Lower v "
            f"(TRAINER.DVP_CLS.V) or use description files with more distinct sentences.")
    km = KMeans(n_clusters=int(v), random_state=int(random_state), n_init=int(n_init)).fit(feats)
    labels = torch.as_tensor(km.labels_, dtype=torch.long)
    record = {"method": "kmeans", "n_clusters": int(v), "random_state": int(random_state),
              "n_init": int(n_init), "sklearn_version": sklearn.__version__, "inertia": float(km.inertia_),
              "sizes": group_sizes(labels, v)}
    if return_centroids:
        return labels, record, torch.as_tensor(km.cluster_centers_, dtype=torch.float32)
    return labels, record


def nearest_centroid(embeddings: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The index of the nearest centroid (Euclidean, k-means' own assignment rule) of each embedding."""
    feats = embeddings.detach().float().cpu()
    return torch.cdist(feats, centroids.float().cpu()).argmin(dim=1)


def random_groups(n: int, v: int, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Ablation: a seeded random, balanced split of the n descriptions into v groups."""
    _check(n, v, "random groups")
    gen = torch.Generator().manual_seed(int(seed))
    labels = torch.empty(n, dtype=torch.long)
    labels[torch.randperm(n, generator=gen)] = torch.arange(n) % int(v)
    return labels, {"method": "random", "n_groups": int(v), "seed": int(seed), "sizes": group_sizes(labels, v)}


def group_sizes(labels: torch.Tensor, v: int):
    """Number of descriptions per group, as a list of ints."""
    return torch.bincount(torch.as_tensor(labels).reshape(-1), minlength=int(v)).tolist()
