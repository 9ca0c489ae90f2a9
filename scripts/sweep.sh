#!/usr/bin/env bash
# Sweep methods x datasets x shots x seeds (seq, one-per-GPU or SLURM array); finished runs are skipped.
# usage: bash scripts/sweep.sh --methods "ar dvp_cls" --datasets "caltech101 dtd" --shots "1 16" \
#            [--seeds "1 2 3"] [--cfg vit_b16] [--opts "KEY VALUE ..."] [--mode seq|gpus|slurm] [--gpus 0,1] [--dry-run]
#        bash scripts/sweep.sh --file sweep.txt          (KEY = VALUE lines; see --help)
here=${BASH_SOURCE[0]%/*}; [[ $here == "${BASH_SOURCE[0]}" ]] && here=.
exec "${RUNNER_PYTHON:-python3}" "$here/run_one.py" sweep "$@"
