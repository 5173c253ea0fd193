#!/usr/bin/env bash
# Leave-one-place-out trainings of the bundled model's recipe (scripts/train_default.sh: all shared
# folders, pixel sizes 0.2-0.5 m, separation targets), one per held-out place, same minutes each:
#   scripts/lopo_train.sh [RUNS_DIR] [MINUTES_PER_FOLD] [SEED]
# or, with EPOCHS=N in the environment, N epochs per fold whatever the wall time (for a shared machine,
# where minutes are not the same budget from one fold to the next).
# Places (Banepa's two folders are one place): banepa zanzibar joplin nacala coxsbazar; HELD_OUT
# picks some. Each fold's model is RUNS_DIR/without-PLACE/best.pt; score them with
#   python benchmarks/lopo_eval.py RUNS_DIR
set -euo pipefail
D=${SHARED_DATA:-../shared/data}
RUNS=${1:-runs/lopo}
M=${2:-16}
SEED=${3:-0}
HELD_OUT=${HELD_OUT-banepa zanzibar joplin nacala coxsbazar}
for place in $HELD_OUT; do
  args=()
  for folder in banepa banepa_z20 zanzibar joplin nacala; do
    [ "${folder%_z20}" = "$place" ] && continue
    args+=(--raster "$D/$folder/$folder.tif" --labels "$D/$folder/${folder}_buildings.geojson")
  done
  if [ "$place" != coxsbazar ]; then
    # chips plus one vector file: the tiles' --labels comes last, after the rasters' own
    args=(--images "$D/coxsbazar/images" "${args[@]}" --labels "$D/coxsbazar/coxsbazar_buildings.geojson")
  fi
  echo "== $(date -u +%H:%M) fold without $place" >&2
  if [ -n "${EPOCHS:-}" ]; then budget=(--epochs "$EPOCHS"); else budget=(--epochs 100000 --max-minutes "$M"); fi
  geounet -q train "${args[@]}" --pixel-size-range 0.2 0.5 --width 16 --tile-size 256 "${budget[@]}" \
    --val-fraction 0.15 --seed "$SEED" --separation --out "$RUNS/without-$place" ${EXTRA_ARGS:-}
done
