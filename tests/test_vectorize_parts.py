"""The parts of geounet.vectorize on their own: the pure steps, union-find and seams, the row buffer."""

import numpy as np
import pytest
from rasterio.features import sieve
from scipy import ndimage

from geounet.vectorize.blocks import RowBuffer
from geounet.vectorize.merge import CoreSeams, Seam, UnionFind
from geounet.vectorize.stages import (
    _flood,
    building_mask,
    drop_small_components,
    grow_seeds,
    label_instances,
    seed_cut,
    seed_pixels,
    seed_score,
)


def test_building_mask_thresholds_sieves_and_keeps_no_data_out():
    rng = np.random.default_rng(0)
    p = rng.random((40, 50)).astype(np.float32)
    valid = np.ones_like(p, bool)
    valid[10:20, 10:20] = False
    m = building_mask(p, valid, 0.5, 6)
    assert m.dtype == bool and not m[~valid].any()
    ref = sieve(((p >= 0.5) & valid).astype(np.uint8), size=6, connectivity=4).astype(bool) & valid
    np.testing.assert_array_equal(m, ref)
    np.testing.assert_array_equal(building_mask(p, valid, 0.5, 0), (p >= 0.5) & valid)


def test_drop_small_components_keeps_4_connected_components_of_min_size():
    px = np.zeros((10, 10), bool)
    px[1:3, 1:3] = True  # 4 px
    px[5, 5] = px[6, 6] = True  # two single pixels (diagonal neighbours are not connected)
    px[8, 1:4] = True  # 3 px
    out = drop_small_components(px, 3)
    assert out[1:3, 1:3].all() and out[8, 1:4].all() and not out[5, 5] and not out[6, 6]
    assert drop_small_components(px, 1) is px


def test_seed_pixels_cut_and_erosion():
    p = np.full((9, 9), 0.9, np.float32)
    mask = np.ones((9, 9), bool)
    cut = np.ones_like(p)
    cut[4] = 0.1  # a contact line through the middle
    s = seed_pixels(mask, p, cut, 0.5, 0)
    assert not s[4].any() and s[:4].all() and s[5:].all()
    eroded = seed_pixels(mask & (np.arange(9) != 4)[:, None], p, None, 0.5, 1)
    assert not eroded[3:6].any() and eroded[0].all()  # array edges do not erode


def test_seed_score_is_building_times_the_cut():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 6, 7)).astype(np.float32)
    channels = ("building", "border", "contact")
    np.testing.assert_allclose(seed_score(probs, channels), probs[0] * seed_cut(probs, [1, 2]), rtol=1e-6)


def test_grow_seeds_on_the_mask_box_equals_the_whole_flood():
    rng = np.random.default_rng(2)
    mask = np.zeros((60, 70), bool)
    mask[12:40, 20:55] = ndimage.gaussian_filter(rng.random((28, 35)), 1.5) > 0.45
    seeds, _ = ndimage.label(mask & (rng.random(mask.shape) > 0.97))
    grown = grow_seeds(mask, seeds, 5)
    np.testing.assert_array_equal(grown, _flood(mask, np.where(mask, seeds, 0), 5))
    assert (grown[~mask] == 0).all() and (grown[seeds > 0] == seeds[seeds > 0]).all()
    assert not grow_seeds(np.zeros((4, 4), bool), np.ones((4, 4), np.int32), 3).any()


def test_label_instances_numbers_unreached_then_grown_by_seed():
    core = np.zeros((5, 9), bool)
    core[1:4, 0:3] = core[1:4, 5:9] = True
    grown = np.zeros((5, 9), np.int32)
    grown[1:4, 5:7], grown[1:4, 7:9] = 40, 12
    labels, n_unreached, seeds = label_instances(core, grown)
    assert n_unreached == 1 and list(seeds) == [12, 40]
    assert (labels[1:4, 0:3] == 1).all() and (labels[1:4, 7:9] == 2).all() and (labels[1:4, 5:7] == 3).all()
    labels, n_unreached, seeds = label_instances(core, None)
    assert n_unreached == 2 and seeds.size == 0


def test_union_find_root_is_the_smallest_id_whatever_the_order():
    for order in ([(5, 3), (3, 9), (9, 1)], [(9, 1), (5, 9), (3, 5)]):
        uf = UnionFind()
        for x in (1, 3, 5, 9, 11):
            uf.add(x)
        for p, q in order:
            uf.union(p, q)
        assert {uf.find(x) for x in (1, 3, 5, 9)} == {1} and uf.find(11) == 11


def identity(block):
    return block.astype(np.int64)


@pytest.mark.parametrize("step", [(1, 0), (0, 1), (0, 0)])
def test_seam_joins_the_pixels_step_away_and_forgets_passed_rows(step):
    uf = UnionFind()
    for x in range(1, 40):
        uf.add(x)
    seam = Seam(step)
    earlier = np.array([[1, 0, 2], [3, 3, 0]])  # raster rows 4-5, columns 10-12
    seam.record(earlier, 4, 10, identity)
    dr, dc = step
    later = np.arange(20, 26).reshape(2, 3)  # ids 20..25 at rows 4 + dr.., columns 10 + dc..
    seam.join(uf, later, 4 + dr, 10 + dc, identity)
    for r, c in np.ndindex(earlier.shape):
        if earlier[r, c]:
            assert uf.find(int(later[r, c])) == uf.find(int(earlier[r, c]))
        else:  # where the earlier side had none, nothing is joined
            assert uf.find(int(later[r, c])) == later[r, c]
    again = np.arange(30, 36).reshape(2, 3)
    seam.join(uf, again, 4 + dr, 10 + dc, identity)  # those rows were passed: nothing left to join
    assert all(uf.find(int(x)) == x for x in again.ravel())


def test_core_seams_hand_the_right_seam_to_the_next_column_band():
    uf = UnionFind()
    for x in range(1, 10):
        uf.add(x)
    band1 = CoreSeams((0, 1))
    band1.join(uf, np.array([[0, 1], [0, 2]]), 0, 0, identity, right_from=1)
    band2 = band1.next_col_band(joins_left=True)
    band2.join(uf, np.array([[5, 0], [6, 0]]), 0, 2, identity, right_from=None)
    assert uf.find(5) == 1 and uf.find(6) == 2
    assert band1.next_col_band(joins_left=False).left is not band1.right


def test_row_buffer_appends_below_and_releases_above():
    buf = RowBuffer(3, a=np.float32, b=bool)
    buf.append(a=np.ones((4, 3), np.float32), b=np.zeros((4, 3), bool))
    buf.append(a=np.full((2, 3), 2, np.float32), b=np.ones((2, 3), bool))
    assert (buf.first_row, buf.end_row) == (0, 6)
    buf.release_before(3)
    rows = buf.rows(3, 6)
    assert (buf.first_row, buf.end_row) == (3, 6) and rows["a"][:, 0].tolist() == [1, 2, 2]
    with pytest.raises(AssertionError):
        buf.rows(2, 4)


def _dense_flood(mask, lab, reach):
    """The flood as first written: whole-array shifts per step (reference for the front-only one)."""
    lab, front = lab.copy(), lab > 0
    free = mask & ~front
    moves = [((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
             ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
             ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
             ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))]
    for _ in range(reach):
        new, got = np.zeros_like(lab), np.zeros_like(free)
        for dst, src in moves:
            take = free[dst] & front[src]
            new[dst][take] = lab[src][take]
            got[dst] |= take
        lab[got] = new[got]
        free &= ~got
        front = got
    return lab


def test_front_only_flood_equals_the_dense_flood_ties_included():
    rng = np.random.default_rng(3)
    for _ in range(200):
        h, w = rng.integers(1, 40, 2)
        mask = rng.random((h, w)) < rng.uniform(0.3, 1.0)
        # many seeds with distinct labels side by side: every tie-break direction occurs
        seeds = np.where(mask & (rng.random((h, w)) < rng.uniform(0.01, 0.3)), rng.integers(1, 30, (h, w)), 0)
        reach = int(rng.integers(0, 25))
        np.testing.assert_array_equal(_flood(mask, seeds.astype(np.int32), reach),
                                      _dense_flood(mask, seeds.astype(np.int32), reach))


def test_seed_pixels_of_held_levels_are_the_same_row_chunk_by_row_chunk():
    """HeldRows.seed_pixels tests the seed score SEED_CHUNK_ROWS rows at a time: the pixels of the whole."""
    from geounet.io.probs import dequantize
    from geounet.vectorize.rows import SEED_CHUNK_ROWS, HeldRows
    from geounet.vectorize.stages import seed_cut, seed_pixels

    rng = np.random.default_rng(3)
    n = 2 * SEED_CHUNK_ROWS + 37
    levels = rng.integers(0, 256, size=(3, n, 90), dtype=np.uint8)
    mask = rng.random((n, 90)) < 0.7
    held = HeldRows(levels=True, cut_channels=[1, 2])
    rows = held.strip(levels, np.ones((n, 90), bool)) | {"mask": mask}
    whole = seed_pixels(mask, dequantize(levels[0]), seed_cut(dequantize(levels), [1, 2]), 0.5, 0)
    assert whole.any() and not whole.all()
    assert np.array_equal(held.seed_pixels(rows, 0.5, 0), whole)


def test_quantize_in_place_gives_the_same_levels():
    from geounet.io.probs import quantize

    p = np.random.default_rng(4).random((3, 50, 70), dtype=np.float32)
    p[0, 0, :4] = [0.0, 1.0, 0.5 / 255, 1.5 / 255]  # the ends and two halfway points
    expected = quantize(p)
    mine = p.copy()
    assert np.array_equal(quantize(mine, overwrite=True), expected) and expected.dtype == np.uint8
    wide = p.astype(np.float64)
    quantize(wide, overwrite=True)
    assert np.array_equal(wide, p.astype(np.float64))  # not float32: left as it is, computed in a copy


def test_simplify_keeps_every_outline_a_valid_polygon_with_its_rings():
    """Douglas-Peucker where it leaves a valid polygon with every ring, else the topology-preserving
    simplifier: on pixel outlines of random blobs with holes, some need the fallback, none is lost."""
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import shape

    from geounet.vectorize.finish import simplify

    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.random((300, 300)), 2.5)
    labels, _ = ndimage.label(field > np.quantile(field, 0.45))
    geoms = np.array([shape(g) for g, _ in shapes(labels.astype(np.int32), mask=labels > 0, connectivity=4)],
                     dtype=object)
    assert shapely.is_valid(geoms).all() and shapely.get_num_interior_rings(geoms).sum() >= 20
    canonical = shapely.normalize(simplify(geoms, 0.0))
    # tolerance 0 drops exactly the collinear vertices, as the topology-preserving simplifier does
    assert shapely.equals_exact(canonical, shapely.normalize(shapely.simplify(geoms, 0.0, preserve_topology=True)),
                                0).all()
    assert (shapely.area(canonical) == shapely.area(geoms)).all()
    for tolerance in (1.0, 2.0):
        out = simplify(canonical, tolerance)
        dp = shapely.simplify(canonical, tolerance, preserve_topology=False)
        lost = shapely.is_empty(dp) | ~shapely.is_valid(dp) | (
            shapely.get_num_interior_rings(dp) != shapely.get_num_interior_rings(canonical))
        assert lost.sum() >= 3  # the fallback is exercised
        assert (shapely.get_type_id(out) == shapely.GeometryType.POLYGON).all()
        assert (shapely.is_valid(out) & ~shapely.is_empty(out)).all()
        assert (shapely.get_num_interior_rings(out) == shapely.get_num_interior_rings(canonical)).all()
        assert shapely.equals_exact(out[~lost], dp[~lost], 0).all()
        assert (shapely.hausdorff_distance(out, canonical) <= tolerance + 1e-9).all()
        assert shapely.equals_exact(out, simplify(canonical.copy(), tolerance), 0).all()  # deterministic


def test_label_polygons_are_gdals_outlines_vertex_for_vertex():
    """Built from one coordinate array, the polygons are those of shapely.geometry.shape of GDAL's
    GeoJSON, holes included, placed at the core's row and column."""
    import shapely
    from affine import Affine
    from rasterio.features import shapes
    from shapely.geometry import shape

    from geounet.vectorize.stages import label_polygons

    rng = np.random.default_rng(5)
    labels, n = ndimage.label(ndimage.gaussian_filter(rng.random((120, 90)), 2.0) > 0.5)
    got = label_polygons(labels.astype(np.int32), 40, 7)
    want = [(int(v), shape(g)) for g, v in shapes(labels.astype(np.int32), mask=labels > 0, connectivity=4,
                                                  transform=Affine.translation(7, 40))]
    assert [v for v, _ in got] == [v for v, _ in want] and sorted({v for v, _ in got}) == list(range(1, n + 1))
    assert all(shapely.equals_exact(g, w, 0) for (_, g), (_, w) in zip(got, want))
    assert sum(len(g.interiors) for _, g in got) >= 3
    assert label_polygons(np.zeros((4, 5), np.int32), 0, 0) == []
