#!/usr/bin/env bash
# Base-to-new (CoCoOp's protocol): train on the base half of the classes, test on base and on new.
# usage: bash scripts/base2new.sh METHOD DATASET [CFG] [KEY VALUE ...] [--dry-run]   (METHOD: ar, vp, ..., as scripts/<method>.sh;
#        CFG default vit_b16; run from the repo root); table: python scripts/make_table.py
#        $OUTPUT/base2new --protocol base2new
# env: SEEDS (default "1 2 3"), DATA (default ./data), OUTPUT (default output), PYTHON (default python)
# Finished runs are skipped, unfinished ones resume; see scripts/protocols.py for the run folders.
here=${BASH_SOURCE[0]%/*}; [[ $here == "${BASH_SOURCE[0]}" ]] && here=.
exec "${RUNNER_PYTHON:-python3}" "$here/protocols.py" base2new "$@"
