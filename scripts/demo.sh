#!/usr/bin/env bash
# The built-in demo: zero-shot CLIP vs VP, AR, AttrVR, DVP-cse and DVP-cls on a shifted Digits task,
# with the small digits-tiny CLIP that the project pre-trains here (no download, a few minutes on a CPU).
# usage: bash scripts/demo.sh
# env:   DATA (default ./data)  OUTPUT (default output/demo)  DEMO_DATASET (default digits_lowcontrast;
#        also digits, digits_inverted, digits_tinted, digits_noisy)  SHOTS (default 16)  SEEDS (default "1 2 3")
#        DEMO_METHODS (default "zsclip vp ar attrvr dvp_cse dvp_cls"; "all": every method with a demo.yaml,
#        the baselines too: CoOp's family, the feature heads, the label-mapping VR methods)
# Finished runs are skipped, so running it again only prints the table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DATA=${DATA:-./data}
export OUTPUT=${OUTPUT:-output/demo}
export SEEDS=${SEEDS:-"1 2 3"}
DATASET=${DEMO_DATASET:-digits_lowcontrast}
SHOTS=${SHOTS:-16}
METHODS=${DEMO_METHODS:-"zsclip vp ar attrvr dvp_cse dvp_cls"}
PY=${RUNNER_PYTHON:-python3}
export PYTHON=${PYTHON:-$PY}
mkdir -p "$DATA"
if [[ $METHODS == all ]]; then  # the catalogue's methods (runs/trainers.json) that have a demo config
  METHODS=$("$PY" -c "import os; from runs import catalogue; print(' '.join(m.script for m in catalogue.load().values()
            if os.path.isfile(os.path.join('configs', 'trainers', m.trainer, 'demo.yaml'))))")
fi

echo "== digits-tiny: a small CLIP pre-trained here on scikit-learn's digits (built once, then cached)"
"$PY" -c "from backbones import load_clip; load_clip('digits-tiny')"

for method in $METHODS; do
  echo "== $method on $DATASET, $SHOTS shots"
  bash "scripts/$method.sh" "$DATASET" "$SHOTS" demo
done

echo
echo "== Results on $DATASET (digits-tiny, short demo schedule; accuracy %, test set of unseen digits)"
"$PY" scripts/make_table.py "$OUTPUT"
