#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the whole test suite on a GPU machine (the
# trainer's "auto" device picks the GPU, so every training test runs there, and
# tests/train/test_cuda.py runs instead of being skipped), then the GPU training benchmark.
# Usage: bash benchmarks/gpu_check.sh [output folder]
# (PYTHON=interpreter, PYTEST_ARGS="-n 4" with pytest-xdist, TEST_TIMEOUT/BENCH_TIMEOUT in s)
set -uo pipefail
out=${1:-gpu-check}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# The server's tests need FastAPI and a browser, which a bare GPU image may lack.
timeout "${TEST_TIMEOUT:-300}" "$py" -m pytest -q -p no:cacheprovider --ignore=tests/serve \
    --durations=15 ${PYTEST_ARGS:-} tests 2>&1 | tee "$out/tests.log"
tests=${PIPESTATUS[0]}
(cd benchmarks && timeout "${BENCH_TIMEOUT:-200}" "$py" transformer_gpu.py) 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
