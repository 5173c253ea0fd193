import math

import numpy as np
import pytest
from rasterio.features import rasterize, shapes
from shapely import affinity
from shapely.geometry import Polygon, box, shape

from geounet.vectorize import dominant_angle, regularize


def corner_angles(poly: Polygon) -> list[float]:
    pts = np.asarray(poly.exterior.coords)[:-1]
    out = []
    for i in range(len(pts)):
        a, b, c = pts[i - 1], pts[i], pts[(i + 1) % len(pts)]
        u, v = a - b, c - b
        cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
        out.append(math.degrees(math.acos(np.clip(cos, -1, 1))))
    return out


def pixelated(poly: Polygon, size: int = 100) -> Polygon:
    """``poly`` burned into a pixel grid and traced back: the stair-stepped outline a mask gives."""
    img = rasterize([(poly, 1)], out_shape=(size, size), dtype="uint8")
    return max((shape(g) for g, v in shapes(img, mask=img > 0)), key=lambda p: p.area)


@pytest.mark.parametrize("angle", [0, 17, 30, 45, 62])
@pytest.mark.parametrize("outline", ["rect", "L"])
def test_squares_pixelated_buildings(angle, outline):
    base = box(30, 35, 70, 60) if outline == "rect" else Polygon([(25, 25), (75, 25), (75, 50), (50, 50), (50, 75), (25, 75)])
    truth = affinity.rotate(base, angle, origin=(50, 50))
    stairs = pixelated(truth)
    out = regularize(stairs, tolerance=1.0)
    assert out.is_valid
    assert abs(out.area - stairs.area) <= 0.1 * stairs.area  # area kept within 10%
    assert all(abs(a - 90) < 1e-6 or abs(a - 270) < 1e-6 for a in corner_angles(out))
    assert len(out.exterior.coords) - 1 == (4 if outline == "rect" else 6)
    assert out.intersection(truth).area / out.union(truth).area > 0.9


def test_dominant_angle_is_modulo_90():
    ring = np.asarray(affinity.rotate(box(0, 0, 10, 4), 100, origin=(0, 0)).exterior.coords)
    assert math.degrees(dominant_angle(ring)) == pytest.approx(10, abs=1e-6)


def test_irregular_shape_is_left_alone_rather_than_distorted():
    circle = shape({"type": "Point", "coordinates": (0, 0)}).buffer(10, quad_segs=16)
    out = regularize(circle, tolerance=0.5)
    assert abs(out.area - circle.area) <= 0.1 * circle.area
