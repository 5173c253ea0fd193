"""Blending weights and the rolling strip accumulator (geounet.stitch)."""

import numpy as np
import pytest

from geounet.stitch import AxisPlan, StripStitcher, profile, ramp


def test_ramp_is_a_smooth_cross_fade():
    r = ramp(64)
    assert r.shape == (64,)
    assert 0 < r[0] < 0.001 and 0.999 < r[-1] < 1
    assert np.all(np.diff(r) > 0)
    # a falling ramp and a rising one over the same pixels sum to one (partition of unity)
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-12)


def test_profile_is_flat_on_raster_borders_and_tapers_inside():
    inner = profile(256, 64, start_border=False, end_border=False)
    assert inner[0] < 0.001 and inner[-1] < 0.001 and inner[128] == 1.0
    left = profile(256, 64, start_border=True, end_border=False)
    assert left[0] == 1.0 and left[-1] < 0.001
    right = profile(256, 64, start_border=False, end_border=True)
    assert right[0] < 0.001 and right[-1] == 1.0
    assert np.all(profile(100, 0, start_border=False, end_border=False) == 1.0)


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 64), (1024, 256, 64), (300, 256, 32), (200, 256, 64), (257, 256, 255)])
def test_axis_plan_covers_every_pixel_with_positive_weight(length, tile, overlap):
    plan = AxisPlan.build(length, tile, overlap)
    assert plan.size == min(tile, length)
    assert plan.offsets[0] == 0 and plan.offsets[-1] + plan.size == length
    assert np.all(plan.total > 0.0)
    # border pixels are not down-weighted to nothing
    assert plan.total[0] >= 1.0 - 1e-9 and plan.total[-1] >= 1.0 - 1e-9


def test_regular_grid_weights_sum_to_one():
    plan = AxisPlan.build(256 + 192 * 5, 256, 64)  # windows exactly stride apart
    np.testing.assert_allclose(plan.total, 1.0, atol=1e-9)


def _run(stitcher: StripStitcher, window_value, skip=lambda i, j: False):
    out = np.full((stitcher.height, stitcher.width), np.nan, dtype=np.float32)
    next_row = 0
    for i, j, r, c in stitcher.windows():
        if skip(i, j):
            stitcher.skip(i, j)
        else:
            stitcher.add(i, j, window_value(r, c, stitcher.rows.size, stitcher.cols.size))
        for _, row0, rows in stitcher.pop_final():
            assert row0 == next_row  # rows come out in order, each once
            out[row0 : row0 + rows.shape[0]] = rows
            next_row = row0 + rows.shape[0]
    assert stitcher.finished and next_row == stitcher.height
    return out


@pytest.mark.parametrize("shape,tile,overlap", [((700, 500), 256, 64), ((256, 256), 256, 64), ((100, 90), 256, 64), ((513, 1030), 128, 96)])
def test_constant_windows_stitch_to_a_constant_map(shape, tile, overlap):
    st = StripStitcher(*shape, tile, overlap)
    out = _run(st, lambda r, c, h, w: np.full((h, w), 0.7, np.float32))
    np.testing.assert_allclose(out, 0.7, rtol=1e-5)


def test_windows_of_one_field_reassemble_that_field():
    rng = np.random.default_rng(0)
    field = rng.random((600, 450)).astype(np.float32)
    st = StripStitcher(600, 450, 128, 40)
    out = _run(st, lambda r, c, h, w: field[r : r + h, c : c + w])
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)


def test_blending_favours_the_window_that_sees_a_pixel_deepest():
    # each window predicts its own distance-to-edge quality: 1 in the middle, 0 at its edges;
    # a plain average would give visible dips at window borders, the blend must not
    st = StripStitcher(64, 1000, 256, 64)

    def quality(r, c, h, w):
        d = np.minimum(np.arange(w), np.arange(w)[::-1])
        q = np.minimum(1.0, d / 32.0)
        q[:1] = 0
        if c == 0:
            q[: w // 2] = 1.0
        if c + w == 1000:
            q[w // 2 :] = 1.0
        return np.broadcast_to(q, (h, w)).astype(np.float32)

    out = _run(st, quality)
    # a plain mean would give 0.5 right at each window edge (0 from one window, 1 from the other)
    assert out.min() > 0.9


def test_skipped_windows_still_complete_their_rows():
    st = StripStitcher(600, 600, 256, 64)
    out = _run(st, lambda r, c, h, w: np.full((h, w), 0.25, np.float32), skip=lambda i, j: (i + j) % 2 == 1)
    assert not np.isnan(out).any()
    # pixels of run windows that no skipped window covers keep the exact value
    assert out[0, 0] == pytest.approx(0.25)


def test_windows_must_come_row_by_row():
    st = StripStitcher(600, 600, 256, 64)
    with pytest.raises(RuntimeError, match="still open"):
        st.add(1, 0, np.zeros((256, 256), np.float32))
    with pytest.raises(ValueError, match="shape"):
        st.add(0, 0, np.zeros((10, 10), np.float32))


def test_bad_overlap_is_refused():
    with pytest.raises(ValueError):
        AxisPlan.build(100, 64, 64)
