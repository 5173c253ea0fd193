#!/usr/bin/env bash
# Write a fixed set of `geounet predict` outputs into OUT_DIR, to compare two versions of the code
# exactly with benchmarks/compare_outputs.py (a refactoring must leave every one identical):
#   benchmarks/predict_outputs.sh /tmp/before      # on the old commit
#   benchmarks/predict_outputs.sh /tmp/after       # on the new one
#   benchmarks/predict_outputs.sh --compare /tmp/before /tmp/after
# Covers: the sample (separation on, --probs), a 5000 px raster (GeoPackage), --regularize
# --no-separate (FlatGeobuf), and Joplin (UTM, 0.6 m: resampled by --pixel-size auto).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
shared=${SHARED_DATA:-$root/../shared/data}
if [ "${1:-}" = "--compare" ]; then
  a=$2 b=$3
  exec python "$here/compare_outputs.py" \
    "$a/sample.geojson" "$b/sample.geojson" "$a/sample_probs.tif" "$b/sample_probs.tif" \
    "$a/r5000.gpkg" "$b/r5000.gpkg" "$a/r5000_probs.tif" "$b/r5000_probs.tif" \
    "$a/sample_reg_nosep.fgb" "$b/sample_reg_nosep.fgb" \
    "$a/joplin.geojson" "$b/joplin.geojson" "$a/joplin_probs.tif" "$b/joplin_probs.tif"
fi
out=${1:?usage: predict_outputs.sh OUT_DIR | --compare A B}
mkdir -p "$out"
big=${BIG_RASTER:-/tmp/geounet-bench/r5000.tif}
[ -f "$big" ] || python "$here/make_raster.py" --size 5000 -o "$big"
cd "$root"
geounet -q predict sample_data/banepa_unlabelled.tif -o "$out/sample.geojson" --probs "$out/sample_probs.tif" --overwrite
geounet -q predict "$big" -o "$out/r5000.gpkg" --probs "$out/r5000_probs.tif" --overwrite
geounet -q predict sample_data/banepa_unlabelled.tif -o "$out/sample_reg_nosep.fgb" --regularize --no-separate --overwrite
geounet -q predict "$shared/joplin/joplin.tif" -o "$out/joplin.geojson" --probs "$out/joplin_probs.tif" --overwrite
