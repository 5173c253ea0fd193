"""Instance separation at prediction time: touching buildings split on seeds, exactly across blocks and bands.

Probabilities are generated: building instances -> the training targets of
geounet.train.targets (building, border, contact) -> blurred, noisy probabilities; the
vectoriser gets them directly, and the CLI gets them as raster bands through a real
U-Net whose weights pass its input bands straight to its outputs.
"""

import math
from collections import deque

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from click.testing import CliRunner
from rasterio.features import rasterize, shapes, sieve
from scipy import ndimage
from shapely import affinity
from shapely.geometry import box, shape
from torch import nn

from affine import Affine
from geounet.cli import cli
from geounet.config import ModelConfig, Preprocessing
from geounet.model import build_model
from geounet.io.probs import dequantize, quantize
from geounet.predict.stitch import StripStitcher
from geounet.train.targets import derive_targets
from geounet.vectorize import StripVectorizer, VectorizeOptions

from helpers_predict import feed_strips, save_unet, write_raster

UTM = Affine(0.5, 0, 500000.0, 0, -0.5, 4000000.0)
SEP = ("building", "border", "contact")
OPT = dict(channels=SEP, separate=True, sieve_px=5, seed_threshold=0.5, seed_min_px=4, reach_px=6)


# -- generated probabilities ---------------------------------------------------------------


def probabilities(instances: np.ndarray, blur: float = 0.7, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """(3, H, W) float32 probabilities of building, border, contact for an instance raster (0.2 m pixels)."""
    t = derive_targets(instances, SEP, 0.2).astype(np.float32).transpose(2, 0, 1)
    p = 0.03 + 0.94 * (ndimage.gaussian_filter(t, (0, blur, blur)) if blur else t)
    if noise:
        p = p + np.random.default_rng(seed).normal(0, noise, p.shape)
    return np.clip(p, 0, 1).astype(np.float32)


def rectangles(rects, shape_hw) -> np.ndarray:
    inst = np.zeros(shape_hw, np.int32)
    for k, (r0, c0, r1, c1) in enumerate(rects, start=1):
        inst[r0:r1, c0:c1] = k
    return inst


def touching_scene(seed: int, shape_hw=(120, 150), n: int = 30) -> np.ndarray:
    """Random rectangles, many of them touching or overlapping (a later one covers an earlier one)."""
    rng = np.random.default_rng(seed)
    h, w = shape_hw
    rects = []
    for _ in range(n):
        rh, rw = rng.integers(6, 30, 2)
        r, c = rng.integers(0, h - rh), rng.integers(0, w - rw)
        rects.append((int(r), int(c), int(r + rh), int(c + rw)))
    return rectangles(rects, shape_hw)


def vectorize(P, strips, bands=None, valid=None, **opt):
    """Polygons (raster CRS) of ``P`` (C, H, W) fed in strips of the given heights (cycled), band by band;
    uint8 ``P`` goes in as ``--probs`` levels (``StripVectorizer(levels=True)``)."""
    P = P if P.ndim == 3 else P[None]
    _, h, w = P.shape
    valid = np.ones((h, w), bool) if valid is None else valid
    options = VectorizeOptions(**opt)
    out = []
    vec = StripVectorizer(h, w, UTM, "EPSG:32633", options, lambda g, a, s: out.append((g, a, s)),
                          levels=P.dtype == np.uint8)
    bands = bands or [(0, w)]
    feed_strips(vec, P, valid, bands, strips, options.margin)
    vec.finish()
    if not out:
        return [], np.zeros(0), np.zeros(0)
    g, a, s = (np.concatenate(x) for x in zip(*out))
    return list(g), a, s


def same_polygons(a, b) -> bool:
    if len(a) != len(b):
        return False
    key = lambda g: (round(g.centroid.x, 6), round(g.centroid.y, 6), round(g.area, 6))  # noqa: E731
    return all(x.symmetric_difference(y).area < 1e-9 for x, y in zip(sorted(a, key=key), sorted(b, key=key)))


def pixel_polygon(rect, transform=UTM):
    r0, c0, r1, c1 = rect
    (x0, y0), (x1, y1) = transform @ (c0, r0), transform @ (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


# -- an independent whole-raster reference ---------------------------------------------------


def reference(P, valid, threshold=0.5, sieve_px=0, seed_threshold=0.5, seed_min_px=0, reach_px=1, **_):
    """The whole raster at once, written plainly: mask, seeds, breadth-first growth, instance polygons."""
    M = ((P[0] >= threshold) & valid).astype(np.uint8)
    if sieve_px >= 2 and M.any():
        M = sieve(M, size=sieve_px, connectivity=4)
    M = M.astype(bool) & valid
    S = M & (P[0] * (1 - P[1]) * (1 - P[2]) >= seed_threshold)
    seeds, n = ndimage.label(S)
    size = np.bincount(seeds.ravel(), minlength=n + 1)
    size[0] = 0
    seeds, n = ndimage.label(size[seeds] >= max(seed_min_px, 1))
    H, W = M.shape
    dist = np.full((H, W), -1)
    queue = deque(zip(*np.nonzero(seeds)))
    dist[seeds > 0] = 0
    order = []
    while queue:
        r, c = queue.popleft()
        order.append((r, c))
        if dist[r, c] == reach_px:
            continue
        for dr, dc in ((-1, 0), (0, -1), (0, 1), (1, 0)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < H and 0 <= cc < W and M[rr, cc] and dist[rr, cc] < 0:
                dist[rr, cc] = dist[r, c] + 1
                queue.append((rr, cc))
    label = seeds.copy()
    for r, c in order:  # breadth-first order: a pixel's predecessors are labelled before it
        if dist[r, c] > 0:
            for dr, dc in ((-1, 0), (0, -1), (0, 1), (1, 0)):  # first neighbour one step closer wins
                rr, cc = r + dr, c + dc
                if 0 <= rr < H and 0 <= cc < W and dist[rr, cc] == dist[r, c] - 1:
                    label[r, c] = label[rr, cc]
                    break
    unreached, _ = ndimage.label(M & (label == 0))
    label = np.where(label > 0, label, np.where(unreached > 0, unreached + n, 0)).astype(np.int32)
    return [shape(g) for g, _ in shapes(label, mask=label > 0, connectivity=4, transform=UTM)]


# -- the vectoriser ---------------------------------------------------------------------------


def test_two_touching_rectangles_are_two_polygons():
    rects = [(10, 10, 40, 35), (10, 35, 40, 70)]  # a shared wall: one blob for a plain mask
    P = probabilities(rectangles(rects, (50, 80)))
    g, _, s = vectorize(P, [50], **OPT)
    assert len(g) == 2
    truth = [pixel_polygon(r) for r in rects]
    for t in truth:  # each polygon is its building, to within the blur of the wall
        best = max(g, key=lambda x: x.intersection(t).area)
        assert best.intersection(t).area / best.union(t).area > 0.9
    assert (s > 0.8).all()
    g1, _, _ = vectorize(P, [50], **{**OPT, "separate": False})
    assert len(g1) == 1  # the same probabilities without separation: one merged polygon


@pytest.mark.parametrize("strips", [[1], [3], [17], [8, 5, 21]])
def test_building_crossing_block_borders_is_one_polygon(strips):
    P = probabilities(rectangles([(4, 10, 56, 40)], (60, 50)))
    g, _, s = vectorize(P, strips, **OPT)
    assert len(g) == 1
    assert g[0].intersection(pixel_polygon((4, 10, 56, 40))).area / g[0].union(pixel_polygon((4, 10, 56, 40))).area > 0.95
    g1, _, s1 = vectorize(P, [60], **OPT)
    assert same_polygons(g, g1) and s[0] == pytest.approx(s1[0], rel=1e-9)


def test_seed_joined_only_below_the_block_is_one_building():
    # a U: the arms' seeds meet only in the bottom bar, blocks below the arms' tops
    inst = rectangles([(4, 8, 40, 20), (4, 40, 40, 52), (40, 8, 52, 52)], (56, 60))
    inst[inst > 0] = 1
    P = probabilities(inst)
    for strips in ([5], [2, 9]):
        g, _, _ = vectorize(P, strips, **{**OPT, "reach_px": 3})
        assert len(g) == 1 and len(g[0].interiors) == 0


M2 = VectorizeOptions(**OPT).instance_margin  # stage 2 runs on the rows stage 1 finished M2 rows ago


@pytest.mark.parametrize("strips", [[30], [10], [30, 7], [15, 15, 3], [30 + M2], [30 + M2, 4]])
def test_buildings_touching_exactly_at_a_block_border_stay_two(strips):
    # the shared wall is the border between rows 29 and 30: a stage-1 border with strips of 30 rows,
    # a stage-2 border with strips of 30 + M2
    rects = [(6, 10, 30, 50), (30, 10, 54, 50)]
    P = probabilities(rectangles(rects, (60, 60)))
    g, _, _ = vectorize(P, strips, **OPT)
    assert len(g) == 2
    for t in (pixel_polygon(r) for r in rects):
        best = max(g, key=lambda x: x.intersection(t).area)
        assert best.intersection(t).area / best.union(t).area > 0.9
    # and across a column-band border through the same wall, turned on its side
    gt, _, _ = vectorize(P.transpose(0, 2, 1).copy(), [7], bands=[(0, 30), (30, 60)], **OPT)
    assert len(gt) == 2


BANDS = [None, [(0, 50), (50, 150)], [(0, 3), (3, 40), (40, 90), (90, 149), (149, 150)]]


@pytest.mark.parametrize("seed", range(4))
def test_streamed_instances_equal_the_whole_raster(seed):
    P = probabilities(touching_scene(seed), seed=seed)
    valid = np.ones(P.shape[1:], bool)
    if seed % 2:
        valid[30:60, 50:70] = False  # no-data through buildings
    P = P * valid
    ref = reference(P, valid, **OPT)
    assert len(ref) > 15
    whole, _, s_whole = vectorize(P, [P.shape[1]], valid=valid, **OPT)
    assert same_polygons(whole, ref)
    for strips in ([7], [13, 4, 29], [1, 2]):
        for bands in BANDS:
            if bands and strips == [1, 2]:
                continue  # slow and adds nothing
            g, _, s = vectorize(P, strips, bands=bands, valid=valid, **OPT)
            assert same_polygons(g, whole), (strips, bands)
            np.testing.assert_allclose(np.sort(s), np.sort(s_whole), rtol=1e-9)  # exact scores


@pytest.mark.parametrize("seed", range(2))
def test_levels_held_as_uint8_give_the_polygons_of_their_float32_probabilities(seed):
    """predict and `geounet vectorize` feed the vectoriser uint8 levels, held as such (a quarter of the
    memory): every polygon, area and score equals the float32 path's on the dequantised levels, with
    separation's cut channels, no-data, several strips and column bands."""
    P = probabilities(touching_scene(seed + 7), seed=seed)
    valid = np.ones(P.shape[1:], bool)
    valid[40:70, 20:45] = False
    stored = quantize(P * valid)
    as_float = dequantize(stored)
    for strips, bands in (([P.shape[1]], None), ([13, 4, 29], BANDS[-1])):
        g_float, a_float, s_float = vectorize(as_float, strips, bands=bands, valid=valid, **OPT)
        g_levels, a_levels, s_levels = vectorize(stored, strips, bands=bands, valid=valid, **OPT)
        assert len(g_float) > 15 and same_polygons(g_levels, g_float)
        assert np.array_equal(np.sort(a_levels), np.sort(a_float)) and np.array_equal(np.sort(s_levels), np.sort(s_float))
    vec = StripVectorizer(*P.shape[1:], UTM, "EPSG:32633", VectorizeOptions(**OPT), lambda *a: None, levels=True)
    with pytest.raises(ValueError, match="uint8 levels"):
        vec.add_rows(0, as_float, valid)


def test_separation_splits_touching_buildings_that_a_plain_mask_merges():
    inst = touching_scene(11)
    P = probabilities(inst, seed=11)
    g_sep, _, _ = vectorize(P, [16], **OPT)
    g_plain, _, _ = vectorize(P, [16], **{**OPT, "separate": False})
    assert len(g_plain) < len(g_sep) <= len(np.unique(inst)) - 1 + 2


def test_no_polygon_overlaps_no_data_with_separation():
    P = probabilities(touching_scene(5), seed=5)
    valid = np.ones(P.shape[1:], bool)
    valid[40:90, 60:75] = False
    valid[::7, 110] = False
    P = P * valid
    invalid = shapely.union_all([shape(g) for g, _ in shapes((~valid).astype(np.uint8), mask=~valid, transform=UTM)])
    for extra in ({"simplify_px": 2.0}, {"regularize_m": 1.0, "pixel_m": (0.5, 0.5)}):
        g, _, _ = vectorize(P, [11], bands=[(0, 70), (70, 150)], valid=valid, **OPT, **extra)
        assert len(g) > 10
        assert sum(x.intersection(invalid).area for x in g) < 1e-6, extra


def test_plain_model_separates_on_eroded_seeds():
    # two buildings joined by a 2 px neck, building probability only
    inst = rectangles([(10, 5, 40, 30), (22, 30, 24, 34), (10, 34, 40, 60)], (50, 66))
    p = np.where(inst > 0, 0.95, 0.05).astype(np.float32)
    opt = dict(separate=True, seed_threshold=0.8, seed_erode_px=2, seed_min_px=4, reach_px=6)
    for strips in ([50], [6]):
        g, _, _ = vectorize(p, strips, **opt)
        assert len(g) == 2
    assert len(vectorize(p, [6])[0]) == 1


def test_narrow_middle_band_is_refused_with_separation():
    P = probabilities(touching_scene(0))
    with pytest.raises(ValueError, match="narrower"):
        vectorize(P, [20], bands=[(0, 50), (50, 55), (55, 150)], **OPT)


def test_stitcher_blends_every_channel_like_a_single_channel_stitcher():
    rng = np.random.default_rng(0)
    field = rng.random((3, 300, 410)).astype(np.float32)
    multi = StripStitcher(300, 410, 128, 32, channels=3)
    singles = [StripStitcher(300, 410, 128, 32) for _ in range(3)]
    out = np.zeros_like(field)
    ref = np.zeros_like(field)
    for i, j, r, c in multi.windows():
        win = np.pad(field, ((0, 0), (0, 128), (0, 128)))[:, r : r + 128, c : c + 128]
        multi.add(i, j, win)
        for k, st in enumerate(singles):
            st.add(i, j, win[k])
        for _, row0, rows in multi.pop_final():
            out[:, row0 : row0 + rows.shape[1]] = rows
        for k, st in enumerate(singles):
            for _, row0, rows in st.pop_final():
                ref[k, row0 : row0 + rows.shape[0]] = rows
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)


# -- through the CLI, with a U-Net that passes its input bands to its outputs ----------------


def passthrough_unet(outputs=SEP, gain: float = 40.0) -> nn.Module:
    """A real geounet U-Net (depth 1) whose output k is ``gain * (band_k / 255 - 0.5)``: bands are probabilities."""
    cfg = ModelConfig(in_channels=3, out_channels=len(outputs), width=4, depth=1, outputs=outputs)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.running_mean.zero_()
                m.running_var.fill_(1.0)

        def identity(conv, offset=0):  # 3x3 conv passing channel c (of the input from offset) to c
            for c in range(3):
                conv.weight[c, offset + c, 1, 1] = 1.0

        identity(model.downs[0].conv[0])
        identity(model.downs[0].conv[3])
        identity(model.ups[0].conv[0], offset=4)  # the skip comes after the 4 upsampled channels
        identity(model.ups[0].conv[3])
        for k in range(len(outputs)):
            model.head.weight[k, k, 0, 0] = gain
            model.head.bias[k] = -gain / 2
    return model.eval()


def passthrough_checkpoint(path, outputs=SEP):
    prep = Preprocessing(bands=(1, 2, 3), scale=255.0, mean=(0.0,) * 3, std=(1.0,) * 3, pixel_size_m=0.2,
                         tile_size=64, dtype="uint8")
    return save_unet(path, passthrough_unet(outputs), prep)


def band_raster(path, P, valid=None):
    """Probabilities (3, H, W) as a uint8 raster on a 0.2 m UTM grid."""
    return write_raster(path, np.rint(np.clip(P, 0, 1) * 255).astype(np.uint8), valid=valid)


def predict_cli(*args):
    res = CliRunner().invoke(cli, ["-q", "predict", *map(str, args)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_passthrough_unet_returns_its_bands():
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = torch.sigmoid(passthrough_unet(gain=1.0)(x))
    np.testing.assert_allclose(y.numpy(), torch.sigmoid(x - 0.5).numpy(), atol=1e-4)


def test_cli_separates_touching_buildings_by_default_with_a_separation_model(tmp_path):
    rects = [(20, 20, 60, 50), (20, 50, 60, 90), (70, 20, 100, 60)]
    P = probabilities(rectangles(rects, (120, 110)), blur=0.5, noise=0.0)
    tif = band_raster(tmp_path / "r.tif", P)
    ckpt = passthrough_checkpoint(tmp_path / "m.pt")
    common = ["--model", ckpt, "--tile-size", "64", "--overlap", "16", "--min-area", "1"]
    predict_cli(tif, "-o", tmp_path / "auto.gpkg", "--probs", tmp_path / "p.tif", "--no-amp", *common)
    predict_cli(tif, "-o", tmp_path / "sep.gpkg", "--separate", *common)
    predict_cli(tif, "-o", tmp_path / "plain.gpkg", "--no-separate", *common)
    auto = pyogrio.read_dataframe(tmp_path / "auto.gpkg")
    assert len(auto) == 3 and len(pyogrio.read_dataframe(tmp_path / "sep.gpkg")) == 3
    assert len(pyogrio.read_dataframe(tmp_path / "plain.gpkg")) == 2  # the two touching ones merge
    truth = [pixel_polygon(r, Affine(0.2, 0, 500000.0, 0, -0.2, 4000000.0)) for r in rects]
    for t in truth:
        best = max(auto.geometry, key=lambda x: x.intersection(t).area)
        assert best.intersection(t).area / best.union(t).area > 0.9
    with rasterio.open(tmp_path / "p.tif") as src:  # --probs carries every channel used
        assert src.count == 3
        assert src.descriptions == tuple(f"{n} probability x 255" for n in SEP)
        expected = 1 / (1 + np.exp(-40.0 * (np.rint(np.clip(P, 0, 1) * 255) / 255 - 0.5)))  # the U-Net's output
        np.testing.assert_allclose(src.read().astype(np.float32) / 255, expected, atol=0.01)


def corner_angles(poly) -> list[float]:
    pts = np.asarray(poly.exterior.coords)[:-1]
    out = []
    for i in range(len(pts)):
        u, v = pts[i - 1] - pts[i], pts[(i + 1) % len(pts)] - pts[i]
        out.append(math.degrees(math.acos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))
    return out


def test_cli_regularize_squares_outlines_and_keeps_their_area(tmp_path):
    t = Affine(0.2, 0, 500000.0, 0, -0.2, 4000000.0)
    shapes_px = [affinity.rotate(box(20, 20, 80, 50), 27, origin=(50, 35)),
                 affinity.rotate(box(30, 75, 70, 115), -12, origin=(50, 95))]
    inst = np.zeros((130, 130), np.int32)
    for k, poly in enumerate(shapes_px, start=1):
        inst[rasterize([(poly, 1)], out_shape=inst.shape, dtype="uint8") > 0] = k
    P = probabilities(inst, blur=0.5, noise=0.0)
    tif = band_raster(tmp_path / "r.tif", P)
    ckpt = passthrough_checkpoint(tmp_path / "m.pt")
    common = ["--model", ckpt, "--tile-size", "64", "--overlap", "16"]
    predict_cli(tif, "-o", tmp_path / "plain.geojson", *common)
    predict_cli(tif, "-o", tmp_path / "reg.geojson", "--regularize", *common)
    plain = pyogrio.read_dataframe(tmp_path / "plain.geojson")
    reg = pyogrio.read_dataframe(tmp_path / "reg.geojson")
    assert len(plain) == len(reg) == 2
    for g in reg.geometry:
        assert all(abs(a - 90) < 1e-6 or abs(a - 270) < 1e-6 for a in corner_angles(g))
        assert len(g.exterior.coords) - 1 == 4
        p = max(plain.geometry, key=lambda x: x.intersection(g).area)
        assert abs(g.area - p.area) <= 0.1 * p.area
        truth = max((shapely.affinity.affine_transform(s, [t.a, t.b, t.d, t.e, t.c, t.f]) for s in shapes_px),
                    key=lambda x: x.intersection(g).area)
        assert g.intersection(truth).area / g.union(truth).area > 0.9
    assert not all(abs(a - 90) < 1e-6 or abs(a - 270) < 1e-6 for g in plain.geometry for a in corner_angles(g))
    assert np.allclose(reg["area_m2"], reg.geometry.area, rtol=2e-3)  # areas are those of the squared outlines


def test_cli_building_only_model(tmp_path):
    # two buildings joined by a thin neck; the building-only model merges them unless --separate
    inst = rectangles([(20, 10, 60, 45), (38, 45, 41, 49), (20, 49, 60, 90)], (80, 100))
    P = np.zeros((3, 80, 100), np.float32)
    P[0] = np.where(inst > 0, 1.0, 0.0)
    tif = band_raster(tmp_path / "r.tif", P)
    ckpt = passthrough_checkpoint(tmp_path / "m.pt", outputs=("building",))
    common = ["--model", ckpt, "--tile-size", "64", "--overlap", "16", "--probs", tmp_path / "p.tif", "--overwrite"]
    predict_cli(tif, "-o", tmp_path / "default.gpkg", *common)
    assert len(pyogrio.read_dataframe(tmp_path / "default.gpkg")) == 1  # default: no separation
    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.count == 1
    predict_cli(tif, "-o", tmp_path / "sep.gpkg", "--separate", *common)
    assert len(pyogrio.read_dataframe(tmp_path / "sep.gpkg")) == 2


def test_column_bands_hand_their_context_columns_over_and_stay_exact(tmp_path):
    """Narrow column bands (context wider than some cores, windows touching three bands) give the one-band
    result bit for bit, probabilities and polygons, running every window once (spill.py)."""
    from geounet.grid import column_bands_with_context, stitched_columns
    from geounet.model.checkpoint import load_model
    from geounet.predict.driver import _layout, predict_raster
    from geounet.predict.settings import RunOptions
    from geounet.predict.stitch import StripStitcher as Stitcher

    P = probabilities(touching_scene(3, (150, 610), n=120), blur=0.5, noise=0.02)
    tif = band_raster(tmp_path / "r.tif", P)
    model, info = load_model(passthrough_checkpoint(tmp_path / "m.pt"), "cpu")
    common = dict(tile=64, overlap=16, batch_size=2, min_area=1.0, simplify=0.0, separate=True, amp=False)
    one = predict_raster(model, info, tif, tmp_path / "one.gpkg", RunOptions(**common), probs=tmp_path / "p1.tif")
    narrow = RunOptions(**common, band_width=96, probs_block=32)
    with rasterio.open(tif) as src:
        layout = _layout(src, info, narrow)
    bands = layout.column_bands
    assert len(bands) >= 5 and layout.vopt.margin > 16
    assert any(b.x1 - b.x0 < 2 * layout.vopt.margin for b in bands)  # some bands take context from a spill's spill
    assert any(set(a.col_ids) & set(c.col_ids) for a, c in zip(layout.stitchers, layout.stitchers[2:]))
    many = predict_raster(model, info, tif, tmp_path / "many.gpkg", narrow, probs=tmp_path / "p2.tif")
    with rasterio.open(tmp_path / "p1.tif") as a, rasterio.open(tmp_path / "p2.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.read_masks(1), b.read_masks(1))
    x, y = pyogrio.read_dataframe(tmp_path / "one.gpkg"), pyogrio.read_dataframe(tmp_path / "many.gpkg")
    assert len(x) == len(y) > 20
    key = lambda df: sorted(zip(df.geometry.normalize().to_wkb(), df["area_m2"], df["score"]))  # noqa: E731
    assert key(x) == key(y)
    # every window runs once, as with one band: the context columns' rows and the windows straddling a
    # border are handed over (stitching every band's [cx0, cx1) itself would run many more)
    H, W = P.shape[1:]
    again = sum(Stitcher(H, W, 64, 16, cols=(b.cx0, b.cx1)).n_windows for b in bands)
    assert one.windows_run == many.windows_run == many.windows == one.windows < again
    assert [(st.x0, st.x1) for st in layout.stitchers] == stitched_columns(bands)
    assert bands == column_bands_with_context(W, 96, 32, layout.vopt.margin)
