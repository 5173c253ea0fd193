"""Pack the shared training data small enough to travel to a device machine (scripts/gpu_train.sh).

The device tool carries at most 64 MiB with the working tree, and the GIS packages (.gpu/site.tar.xz)
take 42 of them, so the six folders of ../shared/data (59 MB) travel as a compact copy:

- a raster finer than ``--pixel-size`` (0.2 m, the finest pixel the default recipe reads: its
  ``--pixel-size-range 0.2 0.5``) is resampled to it, bilinear as training reads it
  (``geounet.io.raster.IMAGE_RESAMPLING``), in its own CRS; coarser rasters keep their pixels.
  Training then reads its 0.2-0.5 m windows from this copy (two bilinear steps instead of one).
- pixels are stored as JPEG (YCbCr, ``--quality`` 85), the way most aerial mosaics are served;
  no-data stays a mask band (``GDAL_TIFF_INTERNAL_MASK``), so what was no-data stays no-data.
- the building polygons are copied as they are, gzipped (scripts/gpu_train.sh unpacks them there).

    python scripts/gpu_data.py ../shared/data .gpu/data
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import rasterio
from rasterio.enums import ColorInterp
from rasterio.warp import reproject

from geounet.io.raster import IMAGE_RESAMPLING
from geounet.io.raster import pixel_size_m as ground_pixel_size_m

PLACES = ("banepa", "zanzibar", "banepa_z20", "joplin", "nacala")


def pack_raster(src_path: Path, dst_path: Path, pixel_size_m: float, quality: int | None) -> str:
    """Write ``src_path`` at no finer than ``pixel_size_m`` to ``dst_path``: JPEG of ``quality``, or
    lossless (DEFLATE) with None; returns a line saying what it did."""
    with rasterio.open(src_path) as src:
        factor = max(pixel_size_m / ground_pixel_size_m(src), 1.0)  # never enlarge
        width, height = max(1, round(src.width / factor)), max(1, round(src.height / factor))
        transform = src.transform @ src.transform.scale(src.width / width, src.height / height)
        profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=src.crs,
                       transform=transform, tiled=True, blockxsize=256, blockysize=256, interleave="pixel")
        if quality is None:
            profile.update(compress="DEFLATE", predictor=2, zlevel=9)
        else:
            profile.update(compress="JPEG", photometric="YCBCR", jpeg_quality=quality)
        image = src.read([1, 2, 3], out_shape=(3, height, width), resampling=IMAGE_RESAMPLING)
        valid = src.dataset_mask(out_shape=(height, width))  # nearest: no-data stays sharp
        tmp = dst_path.with_suffix(".tmp")
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
                dst.write(image)
                if (valid == 0).any():
                    dst.write_mask(valid)
        tmp.replace(dst_path)
        return f"{src_path.name}: {src.width}x{src.height} -> {width}x{height}, {dst_path.stat().st_size / 1e6:.1f} MB"


def gzip_copy(src: Path, folder: Path) -> None:
    with open(src, "rb") as f, gzip.open(folder / f"{src.name}.gz", "wb", compresslevel=9) as g:
        shutil.copyfileobj(f, g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="../shared/data")
    ap.add_argument("out", type=Path, help="folder to write (replaced)")
    ap.add_argument("--pixel-size", type=float, default=0.2, help="finest pixel kept, metres (default 0.2)")
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    ap.add_argument("--lossless", action="store_true", help="DEFLATE instead of JPEG (larger: for a control run)")
    a = ap.parse_args()
    quality = None if a.lossless else a.quality
    shutil.rmtree(a.out, ignore_errors=True)
    for place in PLACES:
        (a.out / place).mkdir(parents=True)
        print(pack_raster(a.data / place / f"{place}.tif", a.out / place / f"{place}.tif", a.pixel_size, quality))
        gzip_copy(a.data / place / f"{place}_buildings.geojson", a.out / place)
    (a.out / "coxsbazar" / "images").mkdir(parents=True)
    for chip in sorted((a.data / "coxsbazar" / "images").glob("*.tif")):  # 0.42 m: pixels kept
        pack_raster(chip, a.out / "coxsbazar" / "images" / chip.name, a.pixel_size, quality)
    gzip_copy(a.data / "coxsbazar" / "coxsbazar_buildings.geojson", a.out / "coxsbazar")
    total = sum(p.stat().st_size for p in a.out.rglob("*") if p.is_file())
    print(f"{a.out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
