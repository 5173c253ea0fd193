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
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu-bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
GIS="import rasterio, pyogrio, shapely, pyproj, geopandas"
if ! "$PY" -c "$GIS" 2>/dev/null && [ -f .gpu/site.tar.xz ]; then  # the device's python: benchmarks/gpu_deps.sh
  site=/tmp/geounet-gpu-site
  if [ ! -f "$site/.done" ]; then
    rm -rf "$site" && mkdir -p "$site" &&
      "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
        .gpu/site.tar.xz "$site" && touch "$site/.done" || { echo "gpu.sh: cannot unpack .gpu/site.tar.xz" >&2; exit 2; }
  fi
  export PYTHONPATH="$PYTHONPATH:$site"
fi
if ! "$PY" -c "import geounet.predict; $GIS" 2>"$OUT/import_error.txt"; then
  echo "gpu.sh: geounet cannot be imported by $PY (missing packages? run benchmarks/gpu_deps.sh here and carry .gpu):" >&2
  tail -3 "$OUT/import_error.txt" >&2
  exit 2
fi
rm -f "$OUT/import_error.txt"
"$PY" benchmarks/bench_gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_bench.log"
exit "${PIPESTATUS[0]}"
