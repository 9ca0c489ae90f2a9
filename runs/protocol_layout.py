"""Where the protocols' runs live under $OUTPUT (scripts/base2new.sh, scripts/xd.sh): the runner writes
there and the tables read the protocol of a result from its place (stdlib only).

    <output>/base2new/train_base/<dataset>/<TRAINER>/<cfg>_16shots/seed<S>   base-class training runs
    <output>/base2new/test_new/<dataset>/...                                 their new-class tests
    <output>/xd/train/imagenet/...                                           the source run of xd / dg
    <output>/xd/test/<target>/...                                            its tests on each target
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

from . import catalogue, layout

PROTOCOL_SHOTS = 16  # the protocols' published setting (CoCoOp, CoOp): 16 shots
XD_SOURCE = "imagenet"
# CoOp's cross-dataset targets (config names); the domain-generalisation targets are the test-only datasets.
XD_TARGETS = ("caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
              "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")
BASE2NEW_TRAIN, BASE2NEW_TEST = ("base2new", "train_base"), ("base2new", "test_new")
XD_TRAIN, XD_TEST = ("xd", "train"), ("xd", "test")


def dg_targets() -> tuple[str, ...]:
    """Config names of the test-only datasets (the ImageNet variants), read from the dataset catalogue."""
    return tuple(row.config_name for row in catalogue.load_datasets().values() if row.test_only)


def run_folder(output: str, protocol_dir: tuple[str, str], dataset: str, trainer: str, cfg: str, seed: int,
               opts: Sequence[str] = ()) -> str:
    """<output>/<protocol_dir>/<dataset>/<TRAINER>/<cfg>_16shots/seed<S> (see protocol_dir_of); the dataset level
    carries the DATASET.* options among ``opts``, as in every run folder (layout.dataset_folder)."""
    return layout.run_dir(osp.join(output, *protocol_dir), dataset, trainer, cfg, PROTOCOL_SHOTS, seed, opts)


def protocol_dir_of(results_path: str) -> tuple[str, str] | None:
    """The protocol folder (XD_TEST, ...) a results.json lies in by run_folder's layout, or None."""
    parts = tuple(osp.normpath(osp.abspath(results_path)).split(os.sep))
    found = parts[-7:-5] if len(parts) >= 7 else ()
    return found if found in (BASE2NEW_TRAIN, BASE2NEW_TEST, XD_TRAIN, XD_TEST) else None


def xd_targets(trainer: str, requested: str | None) -> list[str]:
    """xd.sh's targets: XD_TARGETS (``requested``) or the ten datasets and the ImageNet variants. A method that
    cannot score classes it was not trained on (a per-class head, ``scores_unseen_classes`` false) is tested
    on the variants only, whose classes are ImageNet's or a subset of them (docs/protocols.md): by default the
    ten datasets are left out (said), and naming one is a UsageError before any run."""
    from engine.names import squash

    from .jobs import UsageError

    method = next((m for m in catalogue.load().values() if squash(m.trainer) == squash(trainer)), None)
    dg = list(dg_targets())
    if method is None or method.scores_unseen_classes:
        return (requested or " ".join([*XD_TARGETS, *dg])).split()
    refused = [t for t in (requested or "").split() if t not in dg]
    if refused:
        raise UsageError(f"the cross-dataset target(s) {', '.join(refused)} are not applicable to {method.trainer}: it "
                         f"cannot score classes it was not trained on ({method.unseen_classes}); its xd tests are "
                         f"the ImageNet variants ({', '.join(dg)}). Leave XD_TARGETS unset or name only those.")
    if not requested:
        print(f"Note: {method.trainer} cannot score classes it was not trained on ({method.unseen_classes}): its xd "
              f"tests are the ImageNet variants only ({', '.join(dg)}), not the ten other datasets.")
    return (requested or " ".join(dg)).split()
