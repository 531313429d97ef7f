#!/usr/bin/env bash
# On a GPU machine: Julia from the carried .device folder (docs/gpu-notes.md), the C extension,
# then the GPU tests and/or the GPU record, logs and records under $OUT (default ./gpu-out).
#   bash scripts/gpu-run.sh tests|record|all [ARGS for sparsejl.bench.gpu]
#   bash scripts/gpu-run.sh models [ARGS for sparsejl.bench.model_bench]: BlockSparseLinear's GPU
#     tests, then a Llama-3.2-1B-shaped decoder in fp16, dense against sparsified (docs/models.md)
#   bash scripts/gpu-run.sh decode [ARGS for sparsejl.bench.gpu_decode]   (issue 17: its tests, then its record)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
what=${1:-all}
shift || true
if [ -d .device/debs ] && [ -z "${SPARSEJL_JULIA:-}" ]; then
  eval "$(bash .device/device-julia .device/debs)"
fi
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 JULIA_NUM_THREADS=${JULIA_NUM_THREADS:-8}
python3 setup.py build_ext --inplace >"$out/build.log" 2>&1 || echo "gpu-run: C extension not built; the ctypes call path is used"
status=0
if [ "$what" = tests ] || [ "$what" = all ]; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
  python3 -m pytest -q -ra -p no:cacheprovider tests/gpu 2>&1 | tee "$out/tests.txt" || status=1
fi
if [ "$what" = record ] || [ "$what" = all ]; then
  python3 -m sparsejl.bench.gpu --out "$out" --direct "$@" 2>&1 | tee "$out/bench.log" || status=1
fi
if [ "$what" = models ]; then
  python3 -m pytest -q -ra -p no:cacheprovider tests/gpu/test_gpu_torch_linear.py 2>&1 | tee "$out/models-tests.txt" || status=1
  python3 -m sparsejl.bench.model_bench --device cuda --encoder-densities "" --decoders llama-3.2-1b \
    --decoder-density 0.1 --model-blocksize 64 --prefill-tokens 2048 --out "$out/models" "$@" 2>&1 \
    | tee "$out/models.log" || status=1
fi
if [ "$what" = decode ]; then
  python3 -m pytest -q -ra -p no:cacheprovider tests/gpu/test_gpu_decode.py 2>&1 | tee "$out/tests-decode.txt" || status=1
  python3 -m sparsejl.bench.gpu_decode --out "$out" "$@" 2>&1 | tee "$out/bench-decode.log" || status=1
fi
exit $status
