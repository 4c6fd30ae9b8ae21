#!/bin/sh
# The detector benchmarks quoted in the README (protocols in bench/detect.py). Heavy: about 2 hours on 2 cores.
set -e
cd "$(dirname "$0")/.."
export XDG_DATA_HOME="$PWD/data/.xdg" TORCHINDUCTOR_CACHE_DIR="$PWD/data/.torchinductor"
.venv/bin/python bench/detect.py --datasets creditcard --seeds 10
.venv/bin/python bench/detect.py --datasets mitdb --seeds 3
.venv/bin/python bench/detect.py --datasets fashion --seeds 3 --models ganomaly,autoencoder,iforest --max-epochs 5
.venv/bin/python bench/detect.py --datasets fashion --seeds 3 --models anogan,iforest --max-epochs 5
