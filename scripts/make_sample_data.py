"""Rebuild sample_data/ from ../shared/data (run from the repository root).

- banepa_unlabelled.tif: the 16 unlabelled 512 px chips of Banepa mosaicked to 2048 x 2048
  (a neighbouring area the bundled model was not trained on), for `geounet predict`. The chips fill
  missing imagery with pure white and carry no mask; large white regions (over 2,000 px) get an internal
  no-data mask here, so the sample shows how geounet treats no-data.
- banepa_train.tif + banepa_train_buildings.geojson: a 1024 x 1024 crop of banepa.tif with
  its OpenStreetMap footprints clipped to it, for `geounet train`.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from scipy import ndimage
from rasterio.merge import merge
from rasterio.windows import Window, bounds as window_bounds, transform as window_transform
from shapely.geometry import box

SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data")
OUT = Path("sample_data")
PROFILE = dict(driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="jpeg",
               photometric="ycbcr", jpeg_quality=90)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    chips = sorted(glob.glob(str(SHARED / "banepa" / "unlabelled" / "*.tif")))
    with rasterio.Env():
        mosaic, transform = merge(chips)
        with rasterio.open(chips[0]) as src:
            profile = {**src.profile, **PROFILE, "height": mosaic.shape[1], "width": mosaic.shape[2],
                       "transform": transform}
        white = (mosaic >= 250).all(axis=0)
        regions, n = ndimage.label(white)
        sizes = ndimage.sum(white, regions, index=np.arange(1, n + 1))
        nodata = np.isin(regions, 1 + np.flatnonzero(sizes > 2000))
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(OUT / "banepa_unlabelled.tif", "w", **profile) as dst:
                dst.write(mosaic)
                dst.write_mask(np.where(nodata, 0, 255).astype(np.uint8))

        with rasterio.open(SHARED / "banepa" / "banepa.tif") as src:
            win = Window(1024, 1536, 1024, 1024)
            profile = {**src.profile, **PROFILE, "height": 1024, "width": 1024,
                       "transform": window_transform(win, src.transform)}
            with rasterio.open(OUT / "banepa_train.tif", "w", **profile) as dst:
                dst.write(src.read(window=win))
            frame = box(*window_bounds(win, src.transform))
            crs = src.crs
    labels = gpd.read_file(SHARED / "banepa" / "banepa_buildings.geojson").to_crs(crs)
    clipped = labels[labels.intersects(frame)].clip(frame)
    clipped[["geometry"]].to_file(OUT / "banepa_train_buildings.geojson", driver="GeoJSON")
    print(f"{len(chips)} chips mosaicked; {len(clipped)} footprints in the training crop")


if __name__ == "__main__":
    main()
