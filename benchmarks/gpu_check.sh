#!/usr/bin/env bash
# The GPU check: one script for a GPU machine, within 10 minutes, results under $OUT.
#
#   1. the tests marked `gpu` (tests/test_gpu.py: graph-captured steps,
#      batched training, bfloat16, the convnet on CUDA);
#   2. benchmarks/array_api_gpu.py: MinMaxScaler + MLPClassifier on CUDA
#      tensors under scikit-learn's array API, against the same fed numpy;
#   3. benchmarks/conv_grid.py on CUDA: a 2x2 ConvClassifier grid, 3-fold, 10
#      epochs a fit, sknets' GridSearchCV (conv fits batched) against
#      scikit-learn's, each search in a fresh process;
#   4. benchmarks/bench.py on CUDA: W1-W5 with sknets, scikit-learn and skorch
#      interleaved in one process, the batched W2 / W4 rows included.
#
# The machine needs torch with CUDA, scikit-learn, scipy and pandas; skorch
# (not on the H200 image) travels as a wheel in .whl/ (see the device tool's
# README: `pip download --no-deps --only-binary=:all: ... -d .whl skorch==1.4.0`).
# sknets itself runs from this checkout (PYTHONPATH), so nothing is built there.
#
# Usage: bash benchmarks/gpu_check.sh   (OUT defaults to ./gpu_check_out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export SCIPY_ARRAY_API=1

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

status=0
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, sklearn, skorch; print('torch', torch.__version__, 'cuda', \
torch.version.cuda, '| scikit-learn', sklearn.__version__, '| skorch', skorch.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

# 1. the CUDA paths (about a minute)
timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="" -m gpu tests/test_gpu.py \
    2>&1 | tee "$OUT/gpu-tests.txt" || status=1

# 2. a pipeline on CUDA tensors (scikit-learn's array API) against numpy
timeout 60 python3 benchmarks/array_api_gpu.py --repeats 3 \
    2>&1 | tee "$OUT/array-api.txt" || status=1

# 3. a ConvClassifier grid, batched convnets against scikit-learn's search
timeout 90 python3 benchmarks/conv_grid.py --device cuda --max-iter 10 --repeats 2 \
    --json "$OUT/conv-grid.json" 2>&1 | tee "$OUT/conv-grid.txt" || status=1

# 4. the benchmark (capped so that the whole script stays within 10 minutes)
timeout 300 python3 benchmarks/bench.py --device cuda --in-process --repeats 3 \
    --out "$OUT/bench.md" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench-log.txt" || status=1

exit $status
