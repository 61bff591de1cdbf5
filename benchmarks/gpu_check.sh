#!/usr/bin/env bash
# The GPU check in one command: tests that matter on GPU, HDNNP/ml-ACE energy+forces throughput
# (2k-100k atoms, float32/float64), one training epoch on water and ethanol, peak GPU memory -> JSON.
# Finishes in under 8 minutes on one H100/H200 (hard limit: GPU_CHECK_LIMIT seconds, default 470).
#
#   benchmarks/gpu_check.sh                       # writes benchmarks/results/gpu_check.json
#   benchmarks/gpu_check.sh --out /tmp/g.json     # other options: python benchmarks/gpu_check.py --help
#   JAX_PLATFORMS=cpu benchmarks/gpu_check.sh --tiny --tests ''   # seconds, on a CPU (how the tests run it)
set -euo pipefail
cd "$(dirname "$0")/.."
# measure what the code needs, not JAX's default 75 % preallocation
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
PYTHON="${PYTHON:-python}"
LIMIT="${GPU_CHECK_LIMIT:-470}"
exec timeout --kill-after=10 "$LIMIT" "$PYTHON" benchmarks/gpu_check.py "$@"
