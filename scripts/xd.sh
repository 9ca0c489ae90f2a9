#!/usr/bin/env bash
# Cross-dataset transfer and domain generalisation: train on ImageNet (all classes, 16 shots), test
# the same run on the ten other datasets and on ImageNet-V2, -Sketch, -A and -R.
# usage: bash scripts/xd.sh METHOD [CFG] [KEY VALUE ...] [--dry-run]   (CFG default vit_b16; run from the repo root); tables:
#        python scripts/make_table.py $OUTPUT/xd --protocol xd    (and --protocol dg)
# env: SEEDS (default "1 2 3"), DATA, OUTPUT, PYTHON as the other scripts; XD_TARGETS (dataset config
#      names, default the ten datasets and the four variants). Finished runs are skipped.
here=${BASH_SOURCE[0]%/*}; [[ $here == "${BASH_SOURCE[0]}" ]] && here=.
exec "${RUNNER_PYTHON:-python3}" "$here/protocols.py" xd "$@"
