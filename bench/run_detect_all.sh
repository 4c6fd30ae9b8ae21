#!/bin/sh
# The benchmark subset run for the README (see bench/detect.py for the protocols); run under the heavy-job lock.
set -e
cd "$(dirname "$0")/.."
export XDG_DATA_HOME="$PWD/data/.xdg" TORCHINDUCTOR_CACHE_DIR="$PWD/data/.torchinductor"
.venv/bin/python bench/detect.py --datasets creditcard --seeds 3
.venv/bin/python bench/detect.py --datasets mitdb --seeds 3
.venv/bin/python bench/detect.py --datasets fashion --seeds 1 --models ganomaly,autoencoder,iforest --max-epochs 5
