import json

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import Point, box

from geounet.cli import cli
from geounet.evaluate import evaluate, evaluate_pair, match_objects

from conftest import write_raster

UTM = "EPSG:32633"
X0, Y0 = 500000.0, 4000000.0  # raster origin used below (top-left)


def ubox(x0, y0, x1, y1):
    """A box in metres relative to (X0, Y0 - 20): y grows upwards."""
    return box(X0 + x0, Y0 - 20 + y0, X0 + x1, Y0 - 20 + y1)


def save(tmp_path, name, geoms, crs=UTM, to=None):
    gdf = gpd.GeoDataFrame(geometry=list(geoms), crs=crs)
    if to:
        gdf = gdf.to_crs(to)
    path = tmp_path / name
    gdf.to_file(path)
    return path


def test_identical_footprints_score_one(tmp_path):
    truth = [ubox(0, 0, 5, 5), ubox(8, 0, 12, 6), ubox(0, 10, 6, 16)]
    r = evaluate_pair(str(save(tmp_path, "p.geojson", truth)), str(save(tmp_path, "t.geojson", truth)))
    assert (r.tp, r.fp, r.fn) == (3, 0, 0) and r.f1 == 1.0


def test_empty_prediction(tmp_path):
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    truth = save(tmp_path, "t.gpkg", [ubox(0, 0, 5, 5), ubox(8, 0, 12, 6)])
    r = evaluate_pair(str(empty), str(truth))
    assert (r.tp, r.fp, r.fn) == (0, 0, 2)
    assert (r.precision, r.recall, r.f1) == (0.0, 0.0, 0.0)


def test_footprint_overlapping_two_truths_matches_only_the_better_one(tmp_path):
    # P = 14 x 10; truth A = 10 x 10 inside it: IoU 100/140 = 0.714; truth B beside A: IoU 40/200 = 0.2.
    pred = save(tmp_path, "p.geojson", [ubox(0, 0, 14, 10)])
    truth = save(tmp_path, "t.geojson", [ubox(0, 0, 10, 10), ubox(10, 0, 20, 10)])
    r = evaluate_pair(str(pred), str(truth))
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)
    assert r.precision == 1.0 and r.recall == 0.5 and r.f1 == pytest.approx(2 / 3)


def test_each_truth_matches_once_highest_iou_first():
    truth = gpd.GeoSeries([box(0, 0, 10, 10)])
    preds = gpd.GeoSeries([box(0, 0, 10, 12), box(0, 0, 10, 9)])  # IoU 0.833 and 0.9
    assert match_objects(preds, truth, 0.5) == (1, 1, 0)
    # The threshold is inclusive: IoU exactly 0.5 matches; just below does not.
    assert match_objects(gpd.GeoSeries([box(0, 0, 10, 20)]), truth, 0.5) == (1, 0, 0)
    assert match_objects(gpd.GeoSeries([box(0, 0, 10, 21)]), truth, 0.5) == (0, 1, 1)


@pytest.mark.parametrize("pred_crs", ["EPSG:4326", "EPSG:3857", "EPSG:32633"])
def test_prediction_in_another_crs(tmp_path, pred_crs):
    truth = [ubox(0, 0, 5, 5), ubox(8, 0, 12, 6), ubox(0, 10, 6, 16)]
    preds = [ubox(0, 0, 5, 5.5), ubox(8, 0, 12, 6), ubox(30, 30, 35, 35)]
    pred = save(tmp_path, "p.geojson", preds, to=pred_crs)
    truth_path = save(tmp_path, "t.gpkg", truth)
    r = evaluate_pair(str(pred), str(truth_path))
    assert (r.tp, r.fp, r.fn) == (2, 1, 1)


def test_pixel_scores_inside_the_valid_area(tmp_path):
    valid = np.zeros((20, 20), bool)
    valid[:, :12] = True  # columns 12+ are no-data
    raster = write_raster(tmp_path / "r.tif", np.zeros((3, 20, 20), np.uint8), res=1.0, valid=valid)
    truth = save(tmp_path, "t.geojson", [box(X0, Y0 - 10, X0 + 10, Y0)])       # cols 0-9, rows 0-9
    pred = save(tmp_path, "p.geojson", [box(X0 + 5, Y0 - 10, X0 + 15, Y0)])     # cols 5-14, rows 0-9
    r = evaluate_pair(str(pred), str(truth), raster=str(raster))
    # tp = cols 5-9 (50 px); fp = cols 10-11 (20 px, cols 12-14 are no-data); fn = cols 0-4 (50 px)
    assert r.pixel_counts[:3] == [50, 20, 50]
    assert r.pixel["iou"] == pytest.approx(50 / 120)
    assert r.pixel["precision"] == pytest.approx(50 / 70)
    assert r.pixel["recall"] == pytest.approx(0.5)


def test_pooled_sums_pairs(tmp_path):
    t = save(tmp_path, "t.geojson", [ubox(0, 0, 5, 5), ubox(8, 0, 12, 6)])
    p1 = save(tmp_path, "p1.geojson", [ubox(0, 0, 5, 5)])
    p2 = save(tmp_path, "p2.geojson", [ubox(0, 0, 5, 5), ubox(8, 0, 12, 6), ubox(20, 20, 22, 22)])
    results, pooled = evaluate([(str(p1), str(t)), (str(p2), str(t))])
    assert [(r.tp, r.fp, r.fn) for r in results] == [(1, 0, 1), (2, 1, 0)]
    assert (pooled.tp, pooled.fp, pooled.fn) == (3, 1, 1)


def test_cli_table_and_json(tmp_path):
    t = save(tmp_path, "t.geojson", [ubox(0, 0, 5, 5), ubox(8, 0, 12, 6)])
    p = save(tmp_path, "p.fgb", [ubox(0, 0, 5, 5)])
    res = CliRunner().invoke(cli, ["evaluate", str(p), str(t), str(p), str(t)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["pred", "truth", "TP", "FP", "FN", "precision", "recall", "F1"]
    assert lines[1].split()[2:] == ["1", "0", "1", "1.000", "0.500", "0.667"]
    assert lines[-1].split()[:5] == ["pooled", "pooled", "2", "0", "2"]
    res = CliRunner().invoke(cli, ["evaluate", str(p), str(t), "--json", "--iou", "0.9"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["iou_threshold"] == 0.9 and data["pairs"][0]["tp"] == 1 and data["pooled"]["f1"] == pytest.approx(2 / 3)


def test_cli_bad_input(tmp_path):
    t = save(tmp_path, "t.geojson", [ubox(0, 0, 5, 5)])
    r = CliRunner().invoke(cli, ["evaluate", str(t)])
    assert r.exit_code == 2 and "PRED TRUTH pairs" in r.stderr
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "missing.geojson"), str(t)])
    assert r.exit_code == 1 and "missing.geojson: file not found" in r.stderr and "Traceback" not in r.output
    pts = save(tmp_path, "pts.geojson", [Point(X0, Y0)])
    r = CliRunner().invoke(cli, ["evaluate", str(pts), str(t)])
    assert r.exit_code == 1 and "pts.geojson" in r.stderr and "must be polygons" in r.stderr


def test_truth_inside_a_larger_truth_is_not_a_building_of_its_own(tmp_path):
    """Label files joined from chips repeat a building as clipped copies; those are not missed buildings."""
    whole, other = ubox(0, 0, 10, 6), ubox(12, 0, 16, 6)
    t = save(tmp_path, "t.geojson", [ubox(0, 0, 4, 6), whole, ubox(0, 0, 10, 6), other])
    p = save(tmp_path, "p.geojson", [whole, other])
    r = evaluate_pair(str(p), str(t))
    assert (r.tp, r.fp, r.fn, r.truth_dropped) == (2, 0, 0, 2)
    r = evaluate_pair(str(p), str(t), keep_contained=True)
    assert (r.tp, r.fp, r.fn, r.truth_dropped) == (2, 0, 2, 0)
    res = CliRunner().invoke(cli, ["evaluate", str(p), str(t), "--json", "--keep-contained-truth"])
    assert res.exit_code == 0 and json.loads(res.stdout)["pairs"][0]["fn"] == 2
    res = CliRunner().invoke(cli, ["evaluate", str(p), str(t), "--json"])
    data = json.loads(res.stdout)
    assert data["pairs"][0]["fn"] == 0 and data["pooled"]["truth_dropped"] == 2


def test_pair_without_buildings_pools_its_pixels_as_true_negatives(tmp_path):
    """A chip where neither file has a building (common in scattered chips) pools with the others."""
    valid = np.ones((20, 20), bool)
    valid[:, 15:] = False
    r1 = write_raster(tmp_path / "r1.tif", np.zeros((3, 20, 20), np.uint8), res=1.0)
    r2 = write_raster(tmp_path / "r2.tif", np.zeros((3, 20, 20), np.uint8), res=1.0, valid=valid)
    t = save(tmp_path, "t.geojson", [box(X0, Y0 - 10, X0 + 10, Y0)])
    p = save(tmp_path, "p.geojson", [box(X0, Y0 - 10, X0 + 10, Y0)])
    empty = save(tmp_path, "e.gpkg", [], crs=UTM)
    results, pooled = evaluate([(str(p), str(t)), (str(empty), str(empty))], rasters=[str(r1), str(r2)])
    assert results[1].pixel_counts == [0, 0, 0, 300]
    assert pooled.pixel_counts == [100, 0, 0, 300 + 300]
    assert pooled.pixel["iou"] == pytest.approx(1.0)


def test_reference_footprints_prepared_once_match_like_evaluate_pair(tmp_path):
    # truth in degrees with a duplicate inside a larger footprint: prepared once (metric CRS, the copy
    # dropped), then matched against two predictions in another CRS, each as evaluate_pair scores it
    from geounet.evaluate import ReferenceFootprints, read_footprints

    truth_path = save(tmp_path, "t.geojson", [ubox(0, 0, 10, 10), ubox(2, 2, 4, 4), ubox(20, 0, 26, 6)],
                      to="EPSG:4326")
    reference = ReferenceFootprints.prepare(read_footprints(truth_path, "true"))
    assert reference.dropped == 1 and len(reference.geoms) == 2 and reference.crs.is_projected
    for name, geoms in (("a.gpkg", [ubox(0, 0, 10, 11)]), ("b.gpkg", [ubox(0, 0, 10, 10), ubox(20, 0, 26, 6),
                                                                      ubox(40, 0, 44, 4)])):
        pred = save(tmp_path, name, geoms, to="EPSG:3857")
        r = evaluate_pair(str(pred), str(truth_path))
        assert reference.match(read_footprints(pred, "predicted").geometry) == (r.tp, r.fp, r.fn)
    assert reference.match(gpd.GeoSeries([], crs=UTM)) == (0, 0, 2)
    kept = ReferenceFootprints.prepare(read_footprints(truth_path, "true"), keep_contained=True)
    assert kept.dropped == 0 and len(kept.geoms) == 3
