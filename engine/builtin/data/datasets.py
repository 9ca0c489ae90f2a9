"""Datum, DatasetBase and the dataset registry, with Dassl's semantics (few-shot sampling included)."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..registry import Registry, check_availability
from ..utils import check_isfile

if TYPE_CHECKING:
    from yacs.config import CfgNode

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg: CfgNode) -> DatasetBase:
    avai = DATASET_REGISTRY.registered_names()
    check_availability(cfg.DATASET.NAME, avai)
    if cfg.VERBOSE:
        print(f"Loading dataset: {cfg.DATASET.NAME}")
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


class Datum:
    """One image: path, label, domain and class name (read-only). The image file must exist.

    The attribute names match Dassl's, so pickled few-shot caches are interchangeable.
    """

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        assert isinstance(impath, str)
        if not check_isfile(impath):
            raise FileNotFoundError(f"Image not found: {impath}")
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def __repr__(self) -> str:
        return (f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, "
                f"classname={self._classname!r})")


class DatasetBase:
    """A dataset split into train_x (labelled), train_u (unlabelled), val and test lists of Datum."""

    dataset_dir = ""
    domains = []

    def __init__(self, train_x: list[Datum] | None = None, train_u: list[Datum] | None = None,
                 val: list[Datum] | None = None, test: list[Datum] | None = None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self) -> list[Datum] | None:
        return self._train_x

    @property
    def train_u(self) -> list[Datum] | None:
        return self._train_u

    @property
    def val(self) -> list[Datum] | None:
        return self._val

    @property
    def test(self) -> list[Datum] | None:
        return self._test

    @property
    def lab2cname(self) -> dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> list[str]:
        return self._classnames

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source: Iterable[Datum]) -> int:
        return max({item.label for item in data_source}) + 1

    @staticmethod
    def get_lab2cname(data_source: Iterable[Datum]) -> tuple[dict[int, str], list[str]]:
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping)
        return mapping, [mapping[label] for label in labels]

    def check_input_domains(self, source_domains: Sequence[str], target_domains: Sequence[str]) -> None:
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains: Sequence[str]) -> None:
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(f"Input domain must belong to {self.domains}, but got [{domain}]")

    def generate_fewshot_dataset(self, *data_sources: list[Datum], num_shots: int = -1,
                                 repeat: bool = False) -> list[Datum] | tuple[list[Datum], ...] | list[list[Datum]]:
        """Sample ``num_shots`` items per label from each source, exactly as Dassl does.

        Labels are visited in order of first appearance; a label with at least K items gets
        ``random.sample(items, K)``, else all its items (``random.choices(items, k=K)`` with repeat).
        Uses Python's global ``random``, seeded by ``set_random_seed``.
        """
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources
        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            tracker = self.split_dataset_by_label(data_source)
            dataset = []
            for _label, items in tracker.items():
                if len(items) >= num_shots:
                    sampled = random.sample(items, num_shots)
                elif repeat:
                    sampled = random.choices(items, k=num_shots)
                else:
                    sampled = items
                dataset.extend(sampled)
            output.append(dataset)
        return output[0] if len(output) == 1 else output

    def split_dataset_by_label(self, data_source: Iterable[Datum]) -> dict[int, list[Datum]]:
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    def split_dataset_by_domain(self, data_source: Iterable[Datum]) -> dict[int, list[Datum]]:
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output
