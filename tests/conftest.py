"""Shared fixtures: small georeferenced rasters with synthetic buildings, generated in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


def synthetic_scene(size: int = 256, n: int = 12, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """An RGB uint8 image of bright rectangles (roofs) on a noisy darker ground, and the rectangles (r0, c0, r1, c1)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(90, 12, size=(3, size, size)).clip(0, 255)
    rects = []
    for _ in range(n):
        h, w = rng.integers(10, 30, size=2)
        r, c = rng.integers(0, size - h), rng.integers(0, size - w)
        img[:, r : r + h, c : c + w] = rng.normal([200, 160, 140], 8, size=(h, w, 3)).transpose(2, 0, 1)
        rects.append((int(r), int(c), int(r + h), int(c + w)))
    return img.astype(np.uint8), rects


def write_raster(path: Path, img: np.ndarray, *, crs="EPSG:32633", origin=(500000.0, 4000000.0), res=0.2,
                 valid: np.ndarray | None = None, dtype=None) -> Path:
    """Write a tiled GeoTIFF; ``valid`` (H, W bool) becomes an internal per-dataset mask."""
    count, h, w = img.shape
    transform = Affine(res, 0, origin[0], 0, -res, origin[1])
    profile = dict(driver="GTiff", height=h, width=w, count=count, dtype=dtype or img.dtype,
                   transform=transform, tiled=True, blockxsize=64, blockysize=64)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(img)
            if valid is not None:
                dst.write_mask((valid * 255).astype(np.uint8))
    return path


def rect_polygons(rects, transform):
    """Rectangles in pixel coordinates -> shapely boxes in the raster's CRS."""
    polys = []
    for r0, c0, r1, c1 in rects:
        x0, y0 = transform @ (c0, r0)
        x1, y1 = transform @ (c1, r1)
        polys.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return polys


@pytest.fixture
def scene(tmp_path):
    """A 256x256 UTM raster with 12 rectangle buildings and their labels as GeoJSON in EPSG:4326."""
    return make_scene(tmp_path, "scene")


def make_scene(tmp_path: Path, name: str, size: int = 256, seed: int = 0, valid=None, label_crs="EPSG:4326"):
    img, rects = synthetic_scene(size, n=max(4, size * size // 5000), seed=seed)
    tif = write_raster(tmp_path / f"{name}.tif", img, valid=valid)
    with rasterio.open(tif) as src:
        polys = rect_polygons(rects, src.transform)
        crs = src.crs
    labels = tmp_path / f"{name}.geojson"
    gpd.GeoDataFrame(geometry=polys, crs=crs).to_crs(label_crs).to_file(labels, driver="GeoJSON")
    return tif, labels


def make_tiles(tmp_path: Path, n: int = 4, size: int = 128) -> tuple[Path, Path]:
    """``n`` image tiles and same-named uint8 mask tiles."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        img, rects = synthetic_scene(size, n=6, seed=i)
        origin = (500000.0 + i * size * 0.2, 4000000.0)
        write_raster(images / f"t{i}.tif", img, origin=origin)
        m = np.zeros((1, size, size), np.uint8)
        for r0, c0, r1, c1 in rects:
            m[0, r0:r1, c0:c1] = 1
        write_raster(masks / f"t{i}.tif", m, origin=origin)
    return images, masks


@pytest.fixture(autouse=True)
def _cuda_tests_need_cuda(request):
    """A test marked ``cuda`` (selected with ``-m cuda``) fails, never skips, where torch sees no CUDA GPU."""
    if request.node.get_closest_marker("cuda") is not None:
        import torch

        assert torch.cuda.is_available(), "this test needs a CUDA GPU (torch.cuda.is_available() is False)"
