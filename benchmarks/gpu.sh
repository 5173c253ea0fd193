#!/usr/bin/env bash
# The GPU benchmark in one call of a device machine (docs/benchmarks.md, "GPU"):
#   machine, CUDA tests (pytest -m cuda), model-alone throughput for widths 16/32/64, and
#   geounet predict on a generated 20,000 px raster per width: Mpx/s, peak GPU memory, GPU busy share.
# Results go to $OUT (default runs/gpu-bench): gpu_bench.json, gpu_bench.md, gpu_bench.log.
#
#   benchmarks/gpu_deps.sh                                   # here, once: .gpu/site.tar.xz
#   run(command="benchmarks/gpu.sh", carry=[".gpu"], timeout_s=500)   # device tool
#   benchmarks/gpu.sh --device cpu --size 512 --widths 8     # dry run on a CPU (a few seconds)
# Other options: python3 benchmarks/bench_gpu.py --help (--budget-s bounds the whole run, 420 s by default).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-bench}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh || exit 2   # PY, PYTHONPATH with the GIS packages, a geounet command
"$PY" benchmarks/bench_gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_bench.log"
exit "${PIPESTATUS[0]}"
