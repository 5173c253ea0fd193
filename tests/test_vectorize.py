"""Strip-wise vectorising (geounet.vectorize): merges across block borders, sieve, no-data, ground areas."""

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import shapes, sieve
from scipy import ndimage
from shapely.geometry import shape

from geounet.vectorize import GroundArea, StripVectorizer, VectorizeOptions, to_crs_coords

from helpers_predict import CRS_CASES, feed_strips

UTM = Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)


def run(probs, strips, valid=None, transform=UTM, crs="EPSG:32633", **opt):
    """Vectorise ``probs`` fed in strips of the given heights (cycled); returns (geoms, areas, scores)."""
    h, w = probs.shape
    valid = np.ones_like(probs, dtype=bool) if valid is None else valid
    out = []
    vec = StripVectorizer(h, w, transform, crs, VectorizeOptions(**opt), lambda g, a, s: out.append((g, a, s)))
    r, k = 0, 0
    while r < h:
        n = min(strips[k % len(strips)], h - r)
        vec.add_rows(r, probs[r : r + n], valid[r : r + n])
        r, k = r + n, k + 1
    vec.finish()
    if not out:
        return np.array([], dtype=object), np.zeros(0), np.zeros(0)
    g, a, s = (np.concatenate(x) for x in zip(*out))
    return g, a, s


def whole(binary, transform=UTM):
    """Reference: polygons of the whole mask at once (what a whole-raster approach would give)."""
    return [shape(g) for g, v in shapes(binary.astype(np.uint8), mask=binary.astype(bool), connectivity=4, transform=transform)]


def same_polygons(a, b):
    """Same set of polygons (order free), compared as point sets."""
    if len(a) != len(b):
        return False
    key = lambda g: (round(g.centroid.x, 6), round(g.centroid.y, 6), round(g.area, 6))  # noqa: E731
    return all(x.symmetric_difference(y).area < 1e-9 for x, y in zip(sorted(a, key=key), sorted(b, key=key)))


def test_one_rectangle_has_exact_area_and_score():
    p = np.zeros((40, 50), np.float32)
    p[10:30, 5:25] = 0.9
    p[10:20, 5:25] = 0.7
    g, a, s = run(p, [40])
    assert len(g) == 1
    assert g[0].area == pytest.approx(20 * 20 * 0.25)
    assert a[0] == pytest.approx(100.0, rel=2e-3)  # ground area: UTM scale factor ~0.9996
    assert s[0] == pytest.approx(0.8, abs=1e-6)


@pytest.mark.parametrize("strips", [[1], [3], [7, 2, 11], [16], [200]])
def test_building_cut_by_block_borders_is_one_polygon(strips):
    p = np.zeros((60, 40), np.float32)
    p[5:50, 10:30] = 1.0  # spans many blocks
    p[5:50, 18:22] = 0.6
    g, a, s = run(p, strips)
    assert len(g) == 1
    assert g[0].equals(shapely.box(500005, 4000000 - 25, 500015, 4000000 - 2.5))
    np.testing.assert_allclose(s[0], (45 * 16 * 1.0 + 45 * 4 * 0.6) / (45 * 20), rtol=1e-6)


def test_u_shape_joined_below_the_border_is_one_polygon():
    p = np.zeros((30, 30), np.float32)
    p[2:20, 2:8] = 1
    p[2:20, 20:26] = 1
    p[20:26, 2:26] = 1  # arms meet only in the second block
    g, _, _ = run(p, [10])
    assert len(g) == 1 and len(g[0].interiors) == 0
    assert g[0].area == pytest.approx((18 * 6 * 2 + 6 * 24) * 0.25)


@pytest.mark.parametrize("seed", range(6))
def test_strips_give_the_same_polygons_as_the_whole_mask(seed):
    rng = np.random.default_rng(seed)
    blobs = ndimage.gaussian_filter(rng.random((120, 90)), 2.5)
    p = (blobs > np.quantile(blobs, 0.6)).astype(np.float32)
    ref = whole(p > 0.5)
    for strips in ([120], [5], [13, 4, 29], [1, 2]):
        g, _, _ = run(p, strips)
        assert same_polygons(list(g), ref), strips


@pytest.mark.parametrize("seed", range(4))
def test_sieve_per_block_equals_sieve_of_the_whole_mask(seed):
    rng = np.random.default_rng(seed)
    p = (rng.random((100, 80)) > 0.55).astype(np.float32)  # specks, holes and larger regions
    p[20:60, 20:50] = 1
    ref_mask = sieve((p > 0.5).astype(np.uint8), size=9, connectivity=4)
    ref = whole(ref_mask)
    for strips in ([100], [7], [3, 17]):
        g, _, _ = run(p, strips, sieve_px=9)
        assert same_polygons(list(g), ref), strips
    assert len(ref) < len(whole(p > 0.5))  # the sieve did remove something


def test_threshold_and_min_area():
    p = np.zeros((40, 40), np.float32)
    p[2:6, 2:6] = 0.9  # 4 m^2
    p[10:30, 10:30] = 0.6  # 100 m^2
    p[32:38, 32:38] = 0.4  # below threshold
    g, a, _ = run(p, [9], min_area_m2=5.0)
    assert len(g) == 1 and a[0] == pytest.approx(100, rel=2e-3)
    g, a, _ = run(p, [9], threshold=0.35, min_area_m2=0.0)
    assert len(g) == 3


def test_min_score_drops_buildings_by_their_exact_mean_probability():
    p = np.zeros((40, 40), np.float32)
    p[2:12, 2:12] = 0.6  # score 0.6: dropped at 0.65
    p[20:30, 2:12] = 0.9
    p[20:25, 2:12] = 0.42  # below threshold: not part of the building
    p[20:30, 20:30] = 0.6
    p[20:24, 20:30] = 0.76  # score 0.6 * 0.6 + 0.76 * 0.4 = 0.664: kept at 0.65, whichever strips cut it
    for strips in ([40], [3], [7, 2], [21, 1]):
        g, _, s = run(p, strips, min_score=0.65)
        assert sorted(np.round(s, 3)) == [0.664, 0.9], strips
        assert len(run(p, strips, min_score=0.665)[0]) == 1
        assert len(run(p, strips, min_score=0.0)[0]) == 3


def test_no_polygon_overlaps_no_data_even_when_simplified():
    rng = np.random.default_rng(1)
    blobs = ndimage.gaussian_filter(rng.random((150, 150)), 3)
    p = (blobs > np.quantile(blobs, 0.5)).astype(np.float32)
    valid = np.ones_like(p, bool)
    valid[40:110, 60:75] = False  # a no-data band through the buildings
    valid[::7, 100] = False  # and single no-data pixels
    p_in = p * valid
    invalid = shapely.union_all(whole(~valid))
    for simplify in (0.0, 1.5, 4.0):
        g, _, _ = run(p_in, [11], valid=valid, simplify_px=simplify)
        assert len(g)
        overlap = sum(x.intersection(invalid).area for x in g)
        assert overlap < 1e-6, (simplify, overlap)


def test_simplify_reduces_vertices_and_keeps_area():
    yy, xx = np.mgrid[:200, :200]
    p = (((yy - 100) ** 2 + (xx - 100) ** 2) < 70**2).astype(np.float32)
    g0, a0, _ = run(p, [50])
    g1, a1, _ = run(p, [50], simplify_px=1.5)
    assert shapely.get_num_coordinates(g1[0]) < shapely.get_num_coordinates(g0[0]) / 3
    assert a1[0] == pytest.approx(a0[0], rel=0.01)


@pytest.mark.parametrize("crs_key", list(CRS_CASES))
def test_ground_area_is_right_in_every_crs(crs_key):
    crs, x0, y0, res = CRS_CASES[crs_key]
    t = Affine(res, 0, x0, 0, -res, y0)
    sq = to_crs_coords(np.array([shapely.box(0, 0, 100, 100)], dtype=object), t)[0]
    area = GroundArea(crs)(np.array([sq], dtype=object))[0]
    # reference: the same polygon in the local UTM zone, where map metres are ground metres to 0.1%
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(sq.centroid.x, sq.centroid.y)
    utm = CRS.from_dict({"proj": "utm", "zone": int((lon + 180) // 6) + 1, "south": lat < 0})
    to_utm = Transformer.from_crs(crs, utm, always_xy=True)
    ref = shapely.transform(sq, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))).area
    assert area == pytest.approx(ref, rel=2e-3)
    # and the CRS's own square units would be wrong for degrees, web-mercator and feet
    if crs_key != "EPSG:32633":
        assert abs(sq.area - ref) / ref > 0.05


@pytest.mark.parametrize("crs_key", list(CRS_CASES))
def test_ground_area_equals_pyproj_polygon_by_polygon(crs_key):
    """The rings' coordinates are taken out in one call; each area is still Geod.geometry_area_perimeter's, to the bit."""
    crs, x0, y0, res = CRS_CASES[crs_key]
    t = Affine(res, 0, x0, 0, -res, y0)
    courtyard = shapely.Polygon([(0, 0), (60, 0), (60, 40), (0, 40)], [[(10, 10), (20, 10), (20, 20), (10, 20)],
                                                                       [(30, 5), (50, 5), (40, 30)]])
    pixel = [shapely.box(100, 0, 103, 7), courtyard, shapely.box(200, 200, 201, 201),
             shapely.Polygon([(0, 100), (30, 100), (30, 130), (15, 110), (0, 130)])]
    geoms = shapely.orient_polygons(to_crs_coords(np.array(pixel, dtype=object), t), exterior_cw=False)
    ground = GroundArea(crs)
    areas = ground(geoms)
    assert areas.dtype == np.float64 and len(areas) == 4
    for g, a in zip(ground.lonlat(geoms), areas):
        assert a == abs(ground.geod.geometry_area_perimeter(shapely.orient_polygons(g, exterior_cw=False))[0])
    # several parts add up; nothing is nothing
    both = np.array([shapely.MultiPolygon([geoms[0], geoms[2]]), shapely.Polygon()], dtype=object)
    assert ground(both)[0] == pytest.approx(areas[0] + areas[2], rel=1e-12) and ground(both)[1] == 0


def test_area_subtracts_holes():
    ring = np.zeros((40, 40), np.float32)
    ring[5:35, 5:35] = 1
    ring[15:25, 15:25] = 0
    g, a, _ = run(ring, [40])
    assert len(g[0].interiors) == 1
    assert a[0] == pytest.approx((900 - 100) * 0.25, rel=2e-3)


def test_strips_must_be_in_order_and_complete():
    vec = StripVectorizer(10, 10, UTM, "EPSG:32633", VectorizeOptions(), lambda *a: None)
    with pytest.raises(ValueError):
        vec.add_rows(3, np.zeros((2, 10), np.float32), np.ones((2, 10), bool))
    vec.add_rows(0, np.zeros((4, 10), np.float32), np.ones((4, 10), bool))
    with pytest.raises(ValueError):
        vec.finish()


def run_bands(probs, strips, bands, valid=None, **opt):
    """Like :func:`run`, band by band (left to right), each band with context columns for the sieve."""
    h, w = probs.shape
    valid = np.ones_like(probs, dtype=bool) if valid is None else valid
    out = []
    options = VectorizeOptions(**opt)
    vec = StripVectorizer(h, w, UTM, "EPSG:32633", options, lambda g, a, s: out.append((g, a, s)))
    feed_strips(vec, probs, valid, bands, strips, options.margin)
    vec.finish()
    if not out:
        return np.array([], dtype=object), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(x) for x in zip(*out))


BANDS = [[(0, 90)], [(0, 30), (30, 90)], [(0, 17), (17, 18), (18, 61), (61, 90)]]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bands", BANDS)
def test_column_bands_give_the_same_polygons_as_the_whole_mask(seed, bands):
    rng = np.random.default_rng(seed)
    blobs = ndimage.gaussian_filter(rng.random((120, 90)), 2.5)
    p = np.where(blobs > np.quantile(blobs, 0.55), 0.6 + 0.4 * rng.random((120, 90)), 0.1).astype(np.float32)
    ref = whole(p > 0.5)
    g1, _, s1 = run(p, [120])
    for strips in ([120], [7], [13, 4, 29]):
        g, _, s = run_bands(p, strips, bands)
        assert same_polygons(list(g), ref), (bands, strips)
        # scores of merged buildings are exact: same multiset as the single-block run
        np.testing.assert_allclose(np.sort(s), np.sort(s1), rtol=1e-9)


def test_building_spanning_every_band_and_strip_is_one_polygon():
    p = np.zeros((50, 90), np.float32)
    p[5:45, 3:87] = 1.0
    p[20:30, 10:80] = 0.0  # a ring: crosses every band border twice
    g, a, _ = run_bands(p, [6], BANDS[2])
    assert len(g) == 1 and len(g[0].interiors) == 1
    assert g[0].area == pytest.approx((40 * 84 - 10 * 70) * 0.25)


@pytest.mark.parametrize("bands", BANDS[1:])
def test_sieve_and_no_data_across_band_borders(bands):
    rng = np.random.default_rng(7)
    p = (rng.random((100, 90)) > 0.55).astype(np.float32)
    p[20:60, 20:50] = 1
    valid = np.ones_like(p, bool)
    valid[50:70, 25:65] = False
    p *= valid
    ref = whole(sieve((p > 0.5).astype(np.uint8), size=9, connectivity=4) & valid)
    g, _, _ = run_bands(p, [11], bands, valid=valid, sieve_px=9)
    assert same_polygons(list(g), ref)
    g, _, _ = run_bands(p, [11], bands, valid=valid, sieve_px=9, simplify_px=2.0)
    invalid = shapely.union_all(whole(~valid))
    assert sum(x.intersection(invalid).area for x in g) < 1e-6
