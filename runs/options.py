"""The runners' trailing KEY VALUE options, checked before the first run starts.

Two checks: a key that the runner itself sets from its arguments (shots, seed, dataset, trainer, folders) is
refused, since an option would contradict the run's folder and its done check; and every key, type and value
is checked by train.py against the merged config tree in ONE ``train.py --check-opts`` call per sweep (the
tree, with the trainers' and plugins' keys, needs torch; this package needs only PyYAML).
"""
from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence

# Keys the runners set themselves, and what sets them.
RUNNER_KEYS = {
    "DATASET.NUM_SHOTS": "the SHOTS argument (--shots of sweep.sh); the run folder <cfg>_<K>shots names it",
    "SEED": "the seeds ($SEEDS, --seeds of sweep.sh; train.py --seed)",
    "DATASET.NAME": "the DATASET argument (configs/datasets/<name>.yaml sets it)",
    "TRAINER.NAME": "the METHOD argument",
    "OUTPUT_DIR": "the runner: $OUTPUT/<dataset>/<TRAINER>/<cfg>_<K>shots/seed<S>",
    "DATASET.ROOT": "$DATA",
    "RESUME": "the runner (an unfinished run resumes from its own folder)",
}


class OptionError(ValueError):
    """An option the runner refuses before anything starts."""


def check_runner_keys(keys: Iterable[str], extra: Mapping[str, str] | None = None) -> None:
    """Refuse keys the runner sets itself (``extra``: more such keys of one runner, e.g. a protocol's)."""
    fixed = dict(RUNNER_KEYS, **(extra or {}))
    for key in keys:
        if key in fixed:
            raise OptionError(f"'{key}' cannot be given as an option: it is set by {fixed[key]}")


def check_with_train_py(python: str, opts: Sequence[str]) -> None:
    """One ``python train.py --check-opts KEY VALUE ...``: unknown keys (with the closest real key), wrong
    types and unknown values are an OptionError before the first run. No options: nothing to check."""
    if not opts:
        return
    cmd = list(python) + ["train.py", "--check-opts", *opts]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as err:
        raise OptionError(f"cannot start {shlex.join(python)} to check the options: {err}") from None
    if proc.returncode == 0:
        return
    errors = [line[len("ERROR: "):] for line in proc.stderr.splitlines() if line.startswith("ERROR: ")]
    if errors:
        raise OptionError(errors[-1])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise OptionError(f"checking the options with `{shlex.join(cmd)}` failed (exit {proc.returncode}): "
                      + " | ".join(tail))
