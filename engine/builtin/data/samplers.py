"""The samplers Dassl configs name (CoOp uses RandomSampler and SequentialSampler)."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler", "RandomClassSampler"]


class RandomClassSampler(Sampler):
    """Batches of ``n_ins`` instances from each of ``batch_size // n_ins`` random classes."""

    def __init__(self, data_source: Sequence[Any], batch_size: int, n_ins: int):
        if batch_size < n_ins:
            raise ValueError(f"batch_size={batch_size} must be no less than n_ins={n_ins}")
        self.data_source = data_source
        self.n_ins = n_ins
        self.ncls_per_batch = batch_size // n_ins
        self.index_dic = defaultdict(list)
        for index, item in enumerate(data_source):
            self.index_dic[item.label].append(index)
        self.labels = list(self.index_dic.keys())
        if len(self.labels) < self.ncls_per_batch:
            raise ValueError("Fewer classes than classes per batch for RandomClassSampler")
        self.length = len(list(iter(self)))

    def __iter__(self) -> Iterator[int]:
        batch_idxs_dict = defaultdict(list)
        for label in self.labels:
            idxs = list(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = random.choices(idxs, k=self.n_ins)
            random.shuffle(idxs)
            batch = []
            for idx in idxs:
                batch.append(idx)
                if len(batch) == self.n_ins:
                    batch_idxs_dict[label].append(batch)
                    batch = []
        avai = list(self.labels)
        final = []
        while len(avai) >= self.ncls_per_batch:
            for label in random.sample(avai, self.ncls_per_batch):
                final.extend(batch_idxs_dict[label].pop(0))
                if not batch_idxs_dict[label]:
                    avai.remove(label)
        return iter(final)

    def __len__(self) -> int:
        return self.length


def build_sampler(sampler_type: str, cfg: Any = None, data_source: Sequence[Any] | None = None, batch_size: int = 32,
                  n_domain: int = 0, n_ins: int = 16) -> Sampler:
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    raise ValueError(f"Unknown sampler type: {sampler_type}; available: {AVAI_SAMPLERS}")
