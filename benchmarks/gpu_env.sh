# Sourced by benchmarks/gpu.sh and scripts/gpu_train.sh on a device machine: make geounet importable by
# the machine's python3 (torch is there; the GIS packages come packed in .gpu/site.tar.xz, made here by
# benchmarks/gpu_deps.sh) and put a `geounet` command on the PATH. Sets PY; returns 2 when geounet
# still cannot be imported (the reason, and the import error, on stderr).
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
_gis="import rasterio, pyogrio, shapely, pyproj, geopandas, albumentations"
if ! "$PY" -c "$_gis" 2>/dev/null && [ -f .gpu/site.tar.xz ]; then
  _site=/tmp/geounet-gpu-site
  if [ ! -f "$_site/.done" ]; then
    rm -rf "$_site" && mkdir -p "$_site" &&
      "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
        .gpu/site.tar.xz "$_site" && touch "$_site/.done" || { echo "cannot unpack .gpu/site.tar.xz" >&2; return 2; }
  fi
  export PYTHONPATH="$PYTHONPATH:$_site"
fi
# pure-Python packages newer than the archive's (affine 3: Affine @ (x, y)), copied from a venv here
[ -d .gpu/pylib ] && export PYTHONPATH="$PWD/.gpu/pylib:$PYTHONPATH"
mkdir -p /tmp/geounet-gpu-bin
printf '#!/bin/sh\nexec %s -m geounet "$@"\n' "$PY" > /tmp/geounet-gpu-bin/geounet
chmod +x /tmp/geounet-gpu-bin/geounet
export PATH="/tmp/geounet-gpu-bin:$PATH"
if ! _err=$("$PY" -c "import geounet.predict, geounet.train; $_gis" 2>&1); then
  echo "geounet cannot be imported by $PY (missing packages? run benchmarks/gpu_deps.sh here and carry .gpu):" >&2
  echo "$_err" | tail -3 >&2
  return 2
fi
