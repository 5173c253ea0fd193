#!/usr/bin/env bash
# Run HERE (a machine with pip and the internet) before benchmarks/gpu.sh runs on a device machine.
#
# The device machine's image has python3 3.12 with torch, numpy, pandas, scipy, click, tqdm, pyarrow,
# pytest and opencv, but not geounet's GIS packages, and it cannot download anything. This fetches
# them as x86-64 wheels for Python 3.12 and packs them, unpacked, into one xz archive,
# .gpu/site.tar.xz (about 41 MB: it travels with the 18 MB working tree and scripts/gpu_train.sh's 6 MB of
# data under the device tool's 64 MiB limit; the wheels alone are 62 MB). gpu.sh unpacks it there. Then call the device tool:
#   run(command="benchmarks/gpu.sh", carry=[".gpu"], timeout_s=500)
# The versions are pinned to ones whose wheels are small enough (rasterio and pyogrio each bundle GDAL).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACKAGES=(
  rasterio==1.4.3 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2
  pyogrio==0.10.0 pyproj==3.7.1 shapely==2.1.2 geopandas==1.1.1
  # training (tests/test_cuda.py trains two epochs): albumentations and what it needs beyond the image's
  albumentations==2.0.8 albucore==0.0.24 pydantic==2.11.7 pydantic-core==2.33.2 annotated-types==0.7.0
  typing-inspection==0.4.1 stringzilla==3.12.5 simsimd==6.2.1
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
  -d "$work/wheels" "${PACKAGES[@]}"
mkdir -p "$work/site" .gpu
for w in "$work"/wheels/*.whl; do "$PY" -m zipfile -e "$w" "$work/site"; done
# Slimmer, to leave room for scripts/gpu_train.sh's data under the 64 MiB: no test suites, and pyogrio's
# proj.db as a hard link to rasterio's (the same PROJ 9.4 database; tar stores it once). Stripping the
# libraries is not an option: auditwheel's patched ELF files no longer load once stripped.
find "$work/site" -type d \( -name tests -o -name __pycache__ \) -prune -exec rm -rf {} +
ln -f "$work/site/rasterio/proj_data/proj.db" "$work/site/pyogrio/proj_data/proj.db"
echo "packing $(du -sh "$work/site" | cut -f1) with xz -9 (a few minutes)" >&2
tar -C "$work/site" --sort=name -cf - . | xz -9e -T0 > "$work/site.tar.xz"
mv "$work/site.tar.xz" .gpu/site.tar.xz
du -h .gpu/site.tar.xz
