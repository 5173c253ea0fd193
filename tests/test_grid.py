"""geounet.grid: the window phase of a transform, column bands with context, metres to pixels."""

import math

import pytest
from affine import Affine

from geounet.grid import (ColumnBand, area_px, column_bands, column_bands_with_context, grid_index, lattice_offsets,
                          length_px, window_origin)


def test_window_origin_follows_the_crs_origin_and_ignores_rotated_grids():
    t = Affine(0.2, 0, 500000.6, 0, -0.2, 4000000.0 - 0.2 * 5)
    assert window_origin(t) == (grid_index(t.f, t.e), grid_index(t.c, t.a)) == (-19999995, 2500003)
    assert window_origin(t @ Affine.translation(3, 7)) == (window_origin(t)[0] + 7, window_origin(t)[1] + 3)
    assert window_origin(Affine(0.2, 0.01, 0, 0.01, -0.2, 0)) == (0, 0)
    # degrees: a crop 53 columns and 37 rows in of Banepa's grid
    b = Affine(1.341104507446289e-06, 0.0, 85.51895141601562, 0.0, -1.1881231216440136e-06, 27.63426547568562)
    assert window_origin(b @ Affine.translation(53, 37)) == (window_origin(b)[0] + 37, window_origin(b)[1] + 53)


@pytest.mark.parametrize("first", [0, 5, 53, 390, -17])
@pytest.mark.parametrize("length", [700, 1003, 5000])
def test_inner_windows_sit_on_the_crs_anchored_stride_lattice(first, length):
    size, stride, m = 512, 384, 16
    offs = lattice_offsets(length, size, stride, first, m)
    assert offs[0] == -(first % m) and offs == sorted(set(offs))
    assert all((first + o) % stride == 0 for o in offs[1:-1])
    assert all((first + o) % m == 0 for o in offs)
    assert all(0 < b - a <= stride for a, b in zip(offs, offs[1:]))  # never less overlap than asked
    assert 0 <= offs[-1] + size - length < m


@pytest.mark.parametrize("dy", [1, 37, 53, 400])
def test_a_crop_puts_its_inner_windows_where_the_whole_raster_has_them(dy):
    """Windows of a crop starting ``dy`` pixels in, more than a window from its edges, are the whole raster's."""
    size, stride, m, first, length = 512, 384, 16, 12345, 4000
    whole = {first + o for o in lattice_offsets(length, size, stride, first, m)}
    crop = lattice_offsets(length - dy - 700, size, stride, first + dy, m)
    inner = [first + dy + o for o in crop if o > size and o + size < length - dy - 700 - size]
    assert inner and set(inner) <= whole
@pytest.mark.parametrize("width,max_width,context", [(700, 200, 24), (5000, 8192, 50), (20000, 6144, 100),
                                                    (20000, 5632, 331), (40000, 5632, 331), (5632, 5632, 331)])
def test_column_bands_with_context_widen_each_band_inside_the_raster(width, max_width, context):
    align = 256 if width > 1000 else 64
    bands = column_bands_with_context(width, max_width, align, context)
    core = max_width if width <= max_width else (max_width - 2 * context) // align * align
    assert [(b.x0, b.x1) for b in bands] == column_bands(width, core, align)
    for b in bands:
        assert isinstance(b, ColumnBand)
        assert b.cx0 == max(0, b.x0 - context) and b.cx1 == min(width, b.x1 + context)
        assert b.cx1 - b.cx0 <= max_width  # context included: strips no wider than max_width, whatever the raster


def test_column_bands_keep_one_alignment_step_when_the_context_fills_the_width():
    bands = column_bands_with_context(700, 64, 256, 100)  # 64 - 2 * 100 < 0: bands of one step each
    assert [(b.x0, b.x1) for b in bands] == [(0, 256), (256, 512), (512, 700)]


@pytest.mark.parametrize("px", [0.05, 0.132, 0.2, 0.6, 2.0, 30.0])
def test_metres_to_pixels_keep_the_formulas_and_bounds(px):
    assert area_px(1.0, px, least=2, most=256) == int(min(256, max(2, round(1.0 / (px * px)))))
    assert area_px(4.0, px, least=1) == int(max(1, round(4.0 / (px * px))))
    assert length_px(0.45, px, least=1) == int(max(1, round(0.45 / px)))
    assert length_px(3.0, px, least=1, most=100, up=True) == int(min(100, max(1, math.ceil(3.0 / px))))
    assert 2 <= area_px(1.0, px, least=2, most=256) <= 256
