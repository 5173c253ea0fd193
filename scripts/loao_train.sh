#!/usr/bin/env bash
# Leave-one-area-out training: for each shared area, train on the other two, with and without the
# separation targets (same budget), then the default model on all three areas.
# Usage: scripts/loao_train.sh [RUNS_DIR] [MINUTES_PER_FOLD_RUN] [MINUTES_DEFAULT]
set -euo pipefail
D=${SHARED_DATA:-../shared/data}
RUNS=${1:-runs/loao}
M=${2:-8}
MD=${3:-20}
mkdir -p "$RUNS"
B=(--raster "$D/banepa/banepa.tif" --labels "$D/banepa/banepa_buildings.geojson")
Z=(--raster "$D/zanzibar/zanzibar.tif" --labels "$D/zanzibar/zanzibar_buildings.geojson")
BZ=(--raster "$D/banepa_z20/banepa_z20.tif" --labels "$D/banepa_z20/banepa_z20_buildings.geojson")
COMMON=(--width 16 --tile-size 256 --epochs 1000 --max-minutes "$M" --seed 0 --overwrite)
LOCK=${GEOUNET_LOCK:-/tmp/geounet-cpu.lock}
run() { local out=$1; shift; echo "== $out: geounet train $*" >&2; flock "$LOCK" geounet -q train "$@" --out "$RUNS/$out"; }
for sep in separation no-separation; do
  run "test-zanzibar-$sep"   "${B[@]}" "${BZ[@]}" "${COMMON[@]}" --"$sep"
  run "test-banepa-$sep"     "${Z[@]}" "${BZ[@]}" "${COMMON[@]}" --"$sep"
  run "test-banepa_z20-$sep" "${B[@]}" "${Z[@]}"  "${COMMON[@]}" --"$sep"
done
if [ "$MD" != 0 ]; then
  run default "${B[@]}" "${Z[@]}" "${BZ[@]}" --width 16 --tile-size 256 --epochs 1000 --max-minutes "$MD" --seed 0 --overwrite --separation
fi
