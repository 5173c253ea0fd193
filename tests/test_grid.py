"""geounet.grid: the window phase of a transform, column bands with context, metres to pixels."""

import math

import pytest
from affine import Affine

from geounet.grid import ColumnBand, area_px, column_bands, column_bands_with_context, lattice_phase, length_px, window_phase


def test_window_phase_follows_the_crs_origin_and_ignores_rotated_grids():
    t = Affine(0.2, 0, 500000.6, 0, -0.2, 4000000.0 - 0.2 * 5)
    assert window_phase(t, 16) == (lattice_phase(t.f, t.e, 16), lattice_phase(t.c, t.a, 16))
    assert window_phase(t @ Affine.translation(3, 7), 16) == ((window_phase(t, 16)[0] + 7) % 16,
                                                              (window_phase(t, 16)[1] + 3) % 16)
    assert window_phase(Affine(0.2, 0.01, 0, 0.01, -0.2, 0), 16) == (0, 0)


@pytest.mark.parametrize("width,max_width,context", [(700, 200, 24), (5000, 8192, 50), (20000, 6144, 100)])
def test_column_bands_with_context_widen_each_band_inside_the_raster(width, max_width, context):
    bands = column_bands_with_context(width, max_width, 256 if width > 1000 else 64, context)
    assert [(b.x0, b.x1) for b in bands] == column_bands(width, max_width, 256 if width > 1000 else 64)
    for b in bands:
        assert isinstance(b, ColumnBand)
        assert b.cx0 == max(0, b.x0 - context) and b.cx1 == min(width, b.x1 + context)


@pytest.mark.parametrize("px", [0.05, 0.132, 0.2, 0.6, 2.0, 30.0])
def test_metres_to_pixels_keep_the_formulas_and_bounds(px):
    assert area_px(1.0, px, least=2, most=256) == int(min(256, max(2, round(1.0 / (px * px)))))
    assert area_px(4.0, px, least=1) == int(max(1, round(4.0 / (px * px))))
    assert length_px(0.45, px, least=1) == int(max(1, round(0.45 / px)))
    assert length_px(3.0, px, least=1, most=100, up=True) == int(min(100, max(1, math.ceil(3.0 / px))))
    assert 2 <= area_px(1.0, px, least=2, most=256) <= 256
