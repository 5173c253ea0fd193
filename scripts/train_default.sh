#!/usr/bin/env bash
# Train the bundled default model on all six folders of ../shared/data (see docs/model.md):
#   scripts/train_default.sh [RUN_DIR] [MINUTES] [SEED]
# then: cp RUN_DIR/best.pt geounet/models/default.pt
# Every training window is read at a random ground pixel size between 0.2 and 0.5 m (drone,
# aerial and satellite imagery alike); places are balanced by the sampler; Cox's Bazar's chips
# take their polygons from the one vector file that covers them (the tiles' --labels comes last).
set -euo pipefail
D=${SHARED_DATA:-../shared/data}
RUN=${1:-runs/default}
M=${2:-120}
SEED=${3:-0}
args=()
for area in banepa zanzibar banepa_z20 joplin nacala; do
  args+=(--raster "$D/$area/$area.tif" --labels "$D/$area/${area}_buildings.geojson")
done
exec geounet train --images "$D/coxsbazar/images" "${args[@]}" --labels "$D/coxsbazar/coxsbazar_buildings.geojson" \
  --pixel-size-range 0.2 0.5 --width 16 --tile-size 256 --epochs 100000 --max-minutes "$M" \
  --val-fraction 0.15 --seed "$SEED" --separation --out "$RUN" ${EXTRA_ARGS:-}
