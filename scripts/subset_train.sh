#!/usr/bin/env bash
# The data share of the leave-one-place-out gain (issue 11): the bundled model's recipe
# (scripts/lopo_train.sh) trained on a subset of the shared rasters, by default the two places the
# previous default saw (Banepa with its z20 folder, and Zanzibar). One model stands for every fold of a
# place it never saw among joplin, nacala, coxsbazar: RUN_DIR/without-PLACE links to it, and
#   python benchmarks/lopo_eval.py RUN_DIR --places joplin,nacala,coxsbazar --modes plain
# scores it beside the recipe's folds.
#   FOLDERS="banepa banepa_z20 zanzibar joplin" scripts/subset_train.sh RUN_DIR MINUTES [SEED]
# PIXEL_ARGS sets the working pixel size (default: the recipe's range 0.2-0.5 m; "--pixel-size 0.137" is
# the previous default's fixed size, the pixel-size share). Cox's Bazar's chips are not offered here.
set -euo pipefail
D=${SHARED_DATA:-../shared/data}
RUN=${1:?run folder}
M=${2:?minutes}
SEED=${3:-0}
FOLDERS=${FOLDERS:-banepa banepa_z20 zanzibar}
args=()
for folder in $FOLDERS; do
  args+=(--raster "$D/$folder/$folder.tif" --labels "$D/$folder/${folder}_buildings.geojson")
done
# shellcheck disable=SC2086
geounet -q train "${args[@]}" ${PIXEL_ARGS:---pixel-size-range 0.2 0.5} --width 16 --tile-size 256 \
  --epochs 100000 --max-minutes "$M" --val-fraction 0.15 --seed "$SEED" --separation --out "$RUN/model" \
  ${EXTRA_ARGS:-}
for place in joplin nacala coxsbazar; do
  case " $FOLDERS " in *" $place "*) continue ;; esac
  ln -sfn model "$RUN/without-$place"
done
