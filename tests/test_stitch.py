"""Blending weights and the rolling strip accumulator (geounet.predict.stitch)."""

import numpy as np
import pytest

from geounet.grid import axis_offsets, lattice_offsets, lattice_phase
from geounet.predict.stitch import AxisPlan, StripStitcher, profile, ramp


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
    out = np.full((stitcher.height, stitcher.x1 - stitcher.x0), np.nan, dtype=np.float32)
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


@pytest.mark.parametrize("length,size,stride", [(1000, 256, 192), (1024, 256, 192), (256, 256, 192), (257, 256, 1), (5000, 512, 384)])
def test_lattice_offsets_without_phase_are_the_flush_grid(length, size, stride):
    assert lattice_offsets(length, size, stride) == axis_offsets(length, size, stride)


@pytest.mark.parametrize("length", [700, 1000, 1003, 1536, 100])
@pytest.mark.parametrize("phase", [0, 5, 15])
def test_lattice_offsets_stay_on_the_lattice_and_cover_the_axis(length, phase):
    offs = lattice_offsets(length, 256, 192, phase, 16)
    assert offs[0] == -phase
    assert all((o + phase) % 16 == 0 for o in offs)
    assert all(b - a <= 192 for a, b in zip(offs, offs[1:]))  # never less overlap than asked
    assert offs[-1] + 256 >= length and offs[-1] + 256 - length < 16 or length + phase <= 256


def test_lattice_phase_follows_the_ground_not_the_extent():
    m = 16
    p0 = lattice_phase(500000.0, 0.2, m)
    for d in (1, 7, 16, 23):
        # a crop starting d pixels further right / further down has the same lattice on the ground
        assert lattice_phase(500000.0 + d * 0.2, 0.2, m) == (p0 + d) % m
        assert lattice_phase(4000000.0 - d * 0.2, -0.2, m) == (lattice_phase(4000000.0, -0.2, m) + d) % m
    assert lattice_phase(123.4, 0.2, 1) == 0


@pytest.mark.parametrize("phase", [(0, 0), (3, 11), (15, 1)])
def test_windows_reaching_past_the_raster_are_clipped(phase):
    rng = np.random.default_rng(1)
    field = rng.random((300, 410)).astype(np.float32)
    st = StripStitcher(300, 410, 128, 32, first=phase, multiple=16)
    assert st.rows.offsets[0] == -phase[0] and st.cols.offsets[0] == -phase[1]

    def window(r, c, h, w):
        out = np.full((h, w), np.nan, np.float32)  # outside the raster: must never reach the output
        a, b = max(r, 0), min(r + h, 300)
        e, f = max(c, 0), min(c + w, 410)
        out[a - r : b - r, e - c : f - c] = field[a:b, e:f]
        return out

    out = _run(st, window)
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)
    small = StripStitcher(40, 30, 128, 32, first=phase, multiple=16)
    assert small.rows.size % 16 == 0 and small.rows.size >= 40 + phase[0]
    np.testing.assert_allclose(_run(small, lambda r, c, h, w: np.full((h, w), 0.3, np.float32)), 0.3, rtol=1e-6)


def test_column_bands_reassemble_the_whole_raster():
    from geounet.grid import column_bands

    assert column_bands(5000, 8192) == [(0, 5000)]
    bands = column_bands(20000, 8192)
    assert len(bands) == 3 and bands[0][0] == 0 and bands[-1][1] == 20000
    assert all(a % 256 == 0 for a, _ in bands) and all(b == c for (_, b), (c, _) in zip(bands, bands[1:]))
    rng = np.random.default_rng(2)
    field = rng.random((300, 700)).astype(np.float32)
    whole = StripStitcher(300, 700, 128, 32, first=(3, 5), multiple=16)
    for x0, x1 in column_bands(700, 200, align=64):
        st = StripStitcher(300, 700, 128, 32, first=(3, 5), multiple=16, cols=(x0, x1))
        assert set(st.col_ids) < set(range(len(whole.cols.offsets)))
        out = _run(st, lambda r, c, h, w: np.pad(field, 200)[r + 200 : r + 200 + h, c + 200 : c + 200 + w])
        np.testing.assert_allclose(out, field[:, x0:x1], rtol=1e-5, atol=1e-6)


def test_axis_weights_of_a_range_are_the_whole_axis_sums():
    plan = AxisPlan.build(5000, 512, 128, first=7, multiple=32)
    whole = plan.total
    for a, b in [(0, 1), (0, 384), (383, 901), (4000, 5000), (4999, 5000)]:
        assert np.array_equal(plan.weights(a, b), whole[a:b])  # bit for bit: same windows, same order


def test_stitcher_memory_does_not_grow_with_the_raster_height():
    """No per-row state: a stitcher of a 2,000,000-row raster holds what one of 20,000 rows does, but
    for its window offsets (one integer per window-row; a vector of weights per row would be 16 MB)."""
    import tracemalloc

    def peak(height: int) -> int:
        tracemalloc.start()
        st = StripStitcher(height, 64, 512, 128, first=(5, 0), multiple=32)
        for j in st.col_ids:  # the first window-row, released
            st.add(0, j, np.ones((st.rows.size, st.cols.size), np.float32))
        assert len(list(st.pop_final())) == 1
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    peak(20_000)  # caches warm
    assert peak(2_000_000) - peak(20_000) < 1_000_000


def test_only_the_column_band_being_stitched_holds_an_accumulator():
    """A raster's stitchers are made up front, one per column band; each holds its accumulator only from
    its first window to its last row (four bands of a 20,000 px raster held 100 MB more otherwise), and
    gives the same rows as ever."""
    from geounet.grid import column_bands

    rng = np.random.default_rng(4)
    field = rng.random((300, 700)).astype(np.float32)
    bands = [StripStitcher(300, 700, 128, 32, first=(3, 5), multiple=16, cols=c)
             for c in column_bands(700, 200, align=64)]
    assert len(bands) >= 3 and all(st._buf is None for st in bands)
    for st in bands:
        out = []
        for i, j, r, c in st.windows():
            st.add(i, j, np.pad(field, 200)[r + 200 : r + 200 + st.rows.size, c + 200 : c + 200 + st.cols.size])
            assert st._buf is not None and all(other._buf is None for other in bands if other is not st)
            out += [rows for _, _, rows in st.pop_final()]
        assert st.finished and st._buf is None
        np.testing.assert_allclose(np.concatenate(out), field[:, st.x0 : st.x1], rtol=1e-5, atol=1e-6)
    skipped = StripStitcher(300, 70, 128, 32)  # nothing but skipped windows: zeros, without an add
    rows = []
    for i, j, _, _ in skipped.windows():
        skipped.skip(i, j)
        rows += [r for _, _, r in skipped.pop_final()]
    rows = np.concatenate(rows)
    assert rows.shape == (300, 70) and not rows.any() and skipped._buf is None
