"""Oracle probabilities for the separation study: what instance separation can do when the model's
three channels are right. True footprints -> the training targets of geounet.train.targets (building,
border, contact) -> Gaussian blur (sigma in pixels, a stand-in for a model's soft edges) -> a
three-band --probs-like GeoTIFF, to be scored with benchmarks/separation_tune.py.

Usage: python benchmarks/separation_oracle.py RASTER.tif TRUTH.geojson OUT.tif [--sigma 1.0]
"""

from __future__ import annotations

import argparse

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from scipy import ndimage

from geounet.io.raster import pixel_size_m, read_valid_mask
from geounet.train.targets import OUTPUTS_SEPARATION, derive_targets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raster")
    ap.add_argument("truth")
    ap.add_argument("out")
    ap.add_argument("--sigma", type=float, default=1.0)
    a = ap.parse_args()
    with rasterio.open(a.raster) as src:
        truth = gpd.read_file(a.truth).to_crs(src.crs)
        shape_hw = (src.height, src.width)
        inst = rasterize([(g, i + 1) for i, g in enumerate(truth.geometry)], out_shape=shape_hw,
                         transform=src.transform, dtype="int32")
        valid = read_valid_mask(src)
        px = pixel_size_m(src)
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=3, dtype="uint8", crs=src.crs,
                       transform=src.transform, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    t = derive_targets(inst, OUTPUTS_SEPARATION, px).transpose(2, 0, 1).astype(np.float32)
    if a.sigma > 0:
        t = ndimage.gaussian_filter(t, (0, a.sigma, a.sigma))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(a.out, "w", **profile) as dst:
        dst.write(np.rint(t * 255 * valid).astype(np.uint8))
        dst.write_mask(valid.astype(np.uint8) * 255)
        for k, name in enumerate(OUTPUTS_SEPARATION, start=1):
            dst.set_band_description(k, f"{name} probability x 255")


if __name__ == "__main__":
    main()
