#!/usr/bin/env bash
# Leave-one-area-out training: for each shared area, train on the other two in each configuration
# (same budget), then the default model on all three areas.
# Usage: scripts/loao_train.sh [RUNS_DIR] [MINUTES_PER_FOLD_RUN] [MINUTES_DEFAULT] [SEED]
# MINUTES_DEFAULT=0 skips the default model. Environment:
#   CONFIGS   configurations, default "separation no-separation" ("" for none); also "weight-map"
#             (building output only, loss weighted by the U-Net paper's map)
#   HELD_OUT  held-out areas, default "zanzibar banepa banepa_z20"
# Label polygons inside a larger one (the Zanzibar and Banepa z20 files repeat buildings as clipped
# per-chip copies) are dropped by `geounet train` itself.
set -euo pipefail
D=${SHARED_DATA:-../shared/data}
RUNS=${1:-runs/loao}
M=${2:-8}
MD=${3:-20}
SEED=${4:-0}
CONFIGS=${CONFIGS-separation no-separation}
HELD_OUT=${HELD_OUT-zanzibar banepa banepa_z20}
mkdir -p "$RUNS"
B=(--raster "$D/banepa/banepa.tif" --labels "$D/banepa/banepa_buildings.geojson")
Z=(--raster "$D/zanzibar/zanzibar.tif" --labels "$D/zanzibar/zanzibar_buildings.geojson")
BZ=(--raster "$D/banepa_z20/banepa_z20.tif" --labels "$D/banepa_z20/banepa_z20_buildings.geojson")
COMMON=(--width 16 --tile-size 256 --epochs 1000 --max-minutes "$M" --seed "$SEED" --overwrite)
LOCK=${GEOUNET_LOCK:-/tmp/geounet-cpu.lock}
run() { local out=$1; shift; echo "== $out: geounet train $*" >&2; flock "$LOCK" geounet -q train "$@" --out "$RUNS/$out"; }
for config in $CONFIGS; do
  case $config in
    separation) flags=(--separation) ;;
    no-separation) flags=(--no-separation) ;;
    weight-map) flags=(--no-separation --weight-map) ;;
    *) echo "unknown configuration $config" >&2; exit 2 ;;
  esac
  for area in $HELD_OUT; do
    case $area in
      zanzibar) data=("${B[@]}" "${BZ[@]}") ;;
      banepa) data=("${Z[@]}" "${BZ[@]}") ;;
      banepa_z20) data=("${B[@]}" "${Z[@]}") ;;
      *) echo "unknown area $area" >&2; exit 2 ;;
    esac
    run "test-$area-$config" "${data[@]}" "${COMMON[@]}" "${flags[@]}"
  done
done
if [ "$MD" != 0 ]; then
  run default "${B[@]}" "${Z[@]}" "${BZ[@]}" --width 16 --tile-size 256 --epochs 1000 --max-minutes "$MD" --seed "$SEED" --overwrite --separation
fi
