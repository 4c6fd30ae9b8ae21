#!/bin/sh
# Second round: credit card with ganomaly's validation-chosen settings, then Fashion-MNIST over 3 seeds.
set -e
cd "$(dirname "$0")/.."
export XDG_DATA_HOME="$PWD/data/.xdg" TORCHINDUCTOR_CACHE_DIR="$PWD/data/.torchinductor"
.venv/bin/python bench/detect.py --datasets creditcard --seeds 3
.venv/bin/python bench/detect.py --datasets fashion --seeds 3 --models ganomaly,autoencoder,iforest --max-epochs 5
