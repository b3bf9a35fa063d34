#!/usr/bin/env bash
# One command per device call on the lent GPU machine (see benchmarks/README.md, "GPU figures owed").
#
#   bash benchmarks/run_gpu.sh figures    # ours vs img2img / LEdits++, sweeps, latency, previews, FLOPs, Imagic
#   bash benchmarks/run_gpu.sh ablation --ablation-variants cl,capture   # fast-path toggles (name them: 10 minutes a call)
#   bash benchmarks/run_gpu.sh tests      # tests/test_gpu.py: half-precision GPU vs fp32 CPU
#
# Installs the wheels carried in .whl/ (if any) into /tmp/site, writes logs and JSON results to
# $OUT (or benchmarks/results when $OUT is unset) as it goes. Extra arguments go to bench_gpu.py.
set -uo pipefail
cd "$(dirname "$0")/.."
stage="${1:-figures}"
shift || true
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
# results JSON straight into $OUT, rewritten after every figure: a call stopped at its time limit
# still brings back what it measured
export BENCH_RESULTS="$out"
stamp="$(date -u +%H%M%S)"  # logs of stages chained in one call do not overwrite each other
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
case "$stage" in
  figures)  python3 benchmarks/bench_gpu.py --device cuda --dtype float16 --folder /tmp/sd15 "$@" 2>&1 | tee "$out/figures-$stamp.log" ;;
  ablation)
    # every variant at once is far over a call's 10 minutes (four of them compile): name some
    case " $* " in
      *" --ablation-variants "*|*" --ablation-variants="*) ;;
      *) echo "run_gpu.sh ablation: name the variants, e.g. --ablation-variants cl,capture,fused-capture,inversion (all of them take far over a device call's 10 minutes)"; exit 2 ;;
    esac
    python3 benchmarks/bench_gpu.py --device cuda --dtype float16 --folder /tmp/sd15 --ablation "$@" 2>&1 | tee "$out/ablation-$stamp.log" ;;
  tests)    python3 -m pytest -q -rs tests/test_gpu.py 2>&1 | tee "$out/test_gpu-$stamp.log" ;;
  *) echo "usage: bash benchmarks/run_gpu.sh figures|ablation|tests [bench_gpu.py arguments]"; exit 2 ;;
esac
exit $?
