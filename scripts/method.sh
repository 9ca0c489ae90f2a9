#!/usr/bin/env bash
# Run one registered trainer on one dataset, once per seed in $SEEDS; finished runs are skipped.
# usage: bash scripts/method.sh METHOD DATASET SHOTS [CFG] [KEY VALUE ...] [--dry-run]   (run from the repo root)
#   METHOD: a script name or trainer name of runs/trainers.json (python -m runs.catalogue rewrites it);
#   CFG: configs/trainers/<TRAINER>/<CFG>.yaml (default vit_b16); KEY VALUE: config options for train.py.
# env: SEEDS (default "1 2 3"), DATA (default ./data), OUTPUT (default output), PYTHON (default python)
# scripts/<method>.sh is this script with METHOD filled in; see scripts/run_one.py for the shared rules.
here=${BASH_SOURCE[0]%/*}; [[ $here == "${BASH_SOURCE[0]}" ]] && here=.
exec "${RUNNER_PYTHON:-python3}" "$here/run_one.py" method "$@"
