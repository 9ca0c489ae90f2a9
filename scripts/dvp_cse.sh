#!/usr/bin/env bash
# DVP_CSE: decoupled prompts, one per cause description file, with PRM.
# usage: bash scripts/dvp_cse.sh DATASET SHOTS [CFG]     (CFG default vit_b16; run from the repo root)
# env: SEEDS (default "1 2 3"), DATA (default ./data), OUTPUT (default output), PYTHON (default python)
# Runs skip when results.json exists; see scripts/run_one.py for the shared rules.
here=${BASH_SOURCE[0]%/*}; [[ $here == "${BASH_SOURCE[0]}" ]] && here=.
exec "${RUNNER_PYTHON:-python3}" "$here/run_one.py" method dvp_cse "$@"
