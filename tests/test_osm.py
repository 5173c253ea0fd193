"""OpenStreetMap in: building polygons of .osm files as training labels, evaluation truth and --existing."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import shapely
from click.testing import CliRunner

from geounet.cli import cli
from geounet.labels import read_label_polygons

from conftest import make_scene

SMALL = ["--width", "4", "--depth", "2", "--tile-size", "64", "--batch-size", "4", "--workers", "0"]


def write_osm_xml(path: Path, buildings, extra_ways=(), negative: bool = False) -> Path:
    """An OSM XML file (test input) with a closed way tagged building=yes per polygon of ``buildings``
    (lon/lat), and ``extra_ways``: ``(coords, tags)`` pairs."""
    sign = -1 if negative else 1
    nodes, ways, nid, wid = [], [], 0, 0
    for coords, tags in [(list(p.exterior.coords), {"building": "yes"}) for p in buildings] + list(extra_ways):
        closed = coords[0] == coords[-1]
        refs = []
        for x, y in coords[:-1] if closed else coords:
            nid += 1
            nodes.append(f'  <node id="{sign * nid}" version="1" lat="{y:.7f}" lon="{x:.7f}"/>')
            refs.append(sign * nid)
        if closed:
            refs.append(refs[0])
        wid += 1
        body = "".join(f'<nd ref="{r}"/>' for r in refs) + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        ways.append(f'  <way id="{sign * wid}" version="1">{body}</way>')
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
                    + "\n".join(nodes + ways) + "\n</osm>\n")
    return path


def osm_scene(tmp_path, negative=False):
    """A raster with synthetic buildings, its labels as .osm (plus a highway, an unclosed building way and a
    building=no area that must all be ignored), and the true polygons in lon/lat."""
    tif, labels = make_scene(tmp_path, "s")
    polys = list(gpd.read_file(labels).geometry)
    a, b = polys[0].bounds[:2], polys[1].bounds[:2]
    c = polys[2].exterior.coords
    extra = [
        ([a, b], {"highway": "residential"}),
        ([c[0], c[1], c[2]], {"building": "yes"}),  # not closed: a line, not a building
        (list(shapely.affinity.translate(polys[3], 1e-4).exterior.coords), {"building": "no"}),
    ]
    return tif, write_osm_xml(tmp_path / "s.osm", polys, extra, negative), polys


def test_osm_labels_give_the_building_polygons_only(tmp_path):
    for negative in (False, True):  # JOSM's new objects have negative ids (the driver's fast index refuses them)
        folder = tmp_path / ("neg" if negative else "pos")
        folder.mkdir()
        _, osm, polys = osm_scene(folder, negative)
        got = read_label_polygons(osm)
        assert len(got) == len(polys) and str(got.crs) == "EPSG:4326"
        assert set(got.geom_type) <= {"Polygon", "MultiPolygon"}
        for p in polys:  # each true building read back, to the file's 7 decimals of a degree
            assert min(shapely.hausdorff_distance(p, g) for g in got.values) < 1e-7


def test_osm_pbf_gives_the_same_buildings(tmp_path):
    import osmium

    _, osm, polys = osm_scene(tmp_path)
    pbf = tmp_path / "s.osm.pbf"
    with osmium.SimpleWriter(str(pbf)) as writer:
        for obj in osmium.FileProcessor(str(osm)):
            writer.add(obj)
    got = read_label_polygons(pbf)
    assert len(got) == len(polys)
    for p in polys:
        assert min(shapely.hausdorff_distance(p, g) for g in got.values) < 1e-7


def test_only_new_needs_existing(tmp_path):
    tif, _ = make_scene(tmp_path, "s")
    res = CliRunner().invoke(cli, ["predict", str(tif), "-o", str(tmp_path / "b.gpkg"), "--only-new"])
    assert res.exit_code == 1 and not (tmp_path / "b.gpkg").exists()
    assert res.stderr.strip().splitlines() == ["Error: --only-new needs --existing (the buildings already mapped)"]


def test_train_on_osm_labels(tmp_path):
    tif, osm, _ = osm_scene(tmp_path)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [str(a) for a in ["train", "--raster", tif, "--labels", osm, "--out", out, *SMALL,
                                                    "--epochs", "1"]])
    assert res.exit_code == 0, res.output
    assert (out / "best.pt").exists()


def test_evaluate_takes_osm_truth(tmp_path):
    _, osm, polys = osm_scene(tmp_path)
    pred = tmp_path / "pred.geojson"
    gpd.GeoDataFrame(geometry=polys, crs="EPSG:4326").to_file(pred)
    res = CliRunner().invoke(cli, ["evaluate", str(pred), str(osm), "--json"])
    assert res.exit_code == 0, res.output
    pooled = json.loads(res.stdout)["pooled"]
    assert pooled["tp"] == len(polys) and pooled["fp"] == 0 and pooled["fn"] == 0


def test_osm_file_without_buildings_is_one_clear_line(tmp_path):
    osm = write_osm_xml(tmp_path / "roads.osm", [], [([(85.5, 27.6), (85.501, 27.6)], {"highway": "track"})])
    tif, _ = make_scene(tmp_path, "s")
    res = CliRunner().invoke(cli, ["train", "--raster", str(tif), "--labels", str(osm), "--out", str(tmp_path / "r"),
                                   *SMALL, "--epochs", "1"])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"Error: {osm}: no building (building=*) in the OSM file"]
    assert not (tmp_path / "r").exists()
