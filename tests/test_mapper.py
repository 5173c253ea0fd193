"""The mapper's workflow on 600 x 600 px of real imagery (Banepa) with the bundled model:
``vectorize`` of predict's ``--probs``, ``--existing``/``--only-new``, ``.osm`` output, ``--preview``."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import osmium
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from PIL import Image
from rasterio.windows import Window

from geounet.cli import cli
from geounet.io.preview import NODATA_COLOURS, preview_shape
from geounet.predict.from_probs import vectorize_probs
from geounet.predict.settings import VectorizeConfig

from helpers_predict import SHARED_DATA, write_raster

BANEPA = SHARED_DATA / "banepa" / "banepa.tif"
MASKED = (slice(0, 150), slice(0, 250))  # a corner of the crop marked no-data


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def rows(path):
    """The features of a vector file as a sorted list of (WKB, attributes): a file's content, in any order."""
    gdf = pyogrio.read_dataframe(path)
    attrs = gdf.drop(columns="geometry").itertuples(index=False)
    return sorted((shapely.to_wkb(g), tuple(a)) for g, a in zip(gdf.geometry.values, attrs))


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """600 x 600 px of Banepa (0.13 m, EPSG:4326) with a no-data corner, and predict's outputs on it."""
    d = tmp_path_factory.mktemp("mapper")
    with rasterio.open(BANEPA) as src:
        win = Window(1200, 1500, 600, 600)
        img, mask = src.read(window=win), src.dataset_mask(window=win)
        profile = dict(driver="GTiff", width=600, height=600, count=3, dtype="uint8", crs=src.crs,
                       transform=src.window_transform(win), tiled=True, blockxsize=256, blockysize=256)
    mask[MASKED] = 0
    tif = d / "crop.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(tif, "w", **profile) as dst:
        dst.write(img)
        dst.write_mask(mask)
    res = run("predict", tif, "-o", d / "p.gpkg", "--probs", d / "p.tif", "--preview", d / "p.png")
    assert res.exit_code == 0, res.output
    return d


def test_vectorize_reproduces_predict_exactly(crop):
    res = run("vectorize", crop / "p.tif", "-o", crop / "v.gpkg")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(crop / "v.gpkg")
    predicted = rows(crop / "p.gpkg")
    assert len(predicted) > 20 and rows(crop / "v.gpkg") == predicted
    # the same in narrow column bands (the layout of a wide raster): the vectoriser's seams are exact
    config = VectorizeConfig(input=crop / "p.tif", output=crop / "bands.gpkg", band_width=256)
    vectorize_probs(config)
    assert rows(crop / "bands.gpkg") == predicted


def test_vectorize_with_another_threshold_gives_predict_at_that_threshold(crop):
    assert run("vectorize", crop / "p.tif", "-o", crop / "v7.gpkg", "--threshold", "0.7").exit_code == 0
    at_07 = rows(crop / "v7.gpkg")
    assert at_07 != rows(crop / "p.gpkg")
    sum_area = lambda rs: sum(a[0] for _, a in rs)  # noqa: E731
    assert sum_area(at_07) < sum_area(rows(crop / "p.gpkg"))  # a higher threshold: less building
    res = run("predict", crop / "crop.tif", "-o", crop / "p7.gpkg", "--threshold", "0.7")
    assert res.exit_code == 0, res.output
    assert rows(crop / "p7.gpkg") == at_07


def test_min_score_drops_only_the_buildings_scored_below_it(crop):
    """--min-score drops whole buildings whose mean probability is below it, and changes nothing else."""
    assert run("vectorize", crop / "p.tif", "-o", crop / "all.gpkg", "--min-score", "0").exit_code == 0
    assert run("vectorize", crop / "p.tif", "-o", crop / "high.gpkg", "--min-score", "0.85").exit_code == 0
    every, high = rows(crop / "all.gpkg"), rows(crop / "high.gpkg")
    score = [c for c in pyogrio.read_dataframe(crop / "p.gpkg").columns if c != "geometry"].index("score")
    dropped = set(every) - set(high)
    assert set(high) <= set(every) and dropped and high
    assert all(a[score] < 0.85 for _, a in dropped) and all(a[score] >= 0.85 for _, a in high)
    assert all(a[score] >= 0.65 for _, a in rows(crop / "p.gpkg"))  # predict's default
    for bad in ("1", "-0.1"):
        res = run("vectorize", crop / "p.tif", "-o", crop / "bad.gpkg", "--min-score", bad)
        assert res.exit_code == 2 and "--min-score" in res.output and not (crop / "bad.gpkg").exists()


def test_vectorize_refuses_other_rasters_and_existing_outputs(crop):
    res = run("vectorize", crop / "crop.tif", "-o", crop / "x.gpkg")
    assert res.exit_code == 1 and not (crop / "x.gpkg").exists()
    assert res.stderr.strip().splitlines() == [
        f"Error: {crop / 'crop.tif'}: not a geounet --probs file (uint8 bands named '<output> probability x 255')"]
    before = (crop / "p.gpkg").read_bytes()
    res = run("vectorize", crop / "p.tif", "-o", crop / "p.gpkg")
    assert res.exit_code == 1 and "exists" in res.stderr and (crop / "p.gpkg").read_bytes() == before


def test_existing_marks_copied_footprints_mapped(crop):
    found = gpd.read_file(crop / "p.gpkg")
    # one drawn larger (1.5x: IoU 0.44, but the footprint lies inside it), away from the other footprints
    larger = found.geometry.apply(lambda g: shapely.affinity.scale(g, 1.5, 1.5))
    alone = [k for k in range(3, len(found)) if found.geometry.intersects(larger.iloc[k]).sum() == 1][0]
    copied = found.iloc[[0, 1, 2, alone, alone + 1]].copy()
    copied.loc[copied.index[3], "geometry"] = larger.iloc[alone]
    copied = copied.to_crs("EPSG:3857")  # another CRS: reprojected to the raster's
    copied.loc[copied.index[4], "geometry"] = shapely.affinity.translate(copied.geometry.iloc[4], 500.0)  # away
    copied[["geometry"]].to_file(crop / "existing.gpkg")
    res = run("vectorize", crop / "p.tif", "-o", crop / "status.gpkg", "--existing", crop / "existing.gpkg")
    assert res.exit_code == 0, res.output
    status = gpd.read_file(crop / "status.gpkg")
    assert len(status) == len(found) and set(status["status"]) == {"new", "mapped"}
    mapped = status[status["status"] == "mapped"]
    assert len(mapped) == 4
    for g in found.geometry.iloc[[0, 1, 2, alone]]:
        assert min(shapely.hausdorff_distance(g, m) for m in mapped.geometry) < 1e-9
    res = run("vectorize", crop / "p.tif", "-o", crop / "new.gpkg", "--existing", crop / "existing.gpkg", "--only-new")
    assert res.exit_code == 0, res.output
    new = gpd.read_file(crop / "new.gpkg")
    assert len(new) == len(found) - 4 and set(new["status"]) == {"new"}


def test_predict_only_new_to_osm_for_josm(crop):
    found = gpd.read_file(crop / "p.gpkg")
    found.iloc[:3][["geometry"]].to_file(crop / "three.geojson")
    res = run("predict", crop / "crop.tif", "-o", crop / "todo.osm", "--existing", crop / "three.geojson", "--only-new")
    assert res.exit_code == 0, res.output
    text = (crop / "todo.osm").read_text()
    assert text.startswith("<?xml") and '<osm version="0.6" generator="geounet ' in text
    nodes, ways, relations = {}, {}, []
    for obj in osmium.FileProcessor(str(crop / "todo.osm")):
        if obj.is_node():
            assert not ways  # nodes, then ways, then relations
            nodes[obj.id] = (obj.location.lon, obj.location.lat)
        elif obj.is_way():
            assert not relations
            ways[obj.id] = ([n.ref for n in obj.nodes], dict(obj.tags))
        else:
            relations.append(([(m.type, m.ref, m.role) for m in obj.members], dict(obj.tags)))
    ids = list(nodes) + list(ways)
    assert max(ids) < 0 and len(set(ids)) == len(ids)  # new objects, ids unique across types
    assert all(refs[0] == refs[-1] for refs, _ in ways.values())  # closed
    tags = {"building": "yes", "source": "geounet"}
    ring = lambda w: [nodes[n] for n in ways[w][0]]  # noqa: E731
    outlines = [shapely.Polygon(ring(w)) for w, (_, t) in ways.items() if t]
    assert all(t == tags for _, t in ways.values() if t)
    for members, t in relations:  # footprints with holes: multipolygons of untagged ways
        assert t == {"type": "multipolygon", **tags} and [m[2] for m in members][0] == "outer"
        assert all(m[0] == "w" and not ways[m[1]][1] for m in members)
        outlines.append(shapely.Polygon(ring(members[0][1]), [ring(m[1]) for m in members[1:]]))
    expected = found.iloc[3:].to_crs("EPSG:4326").geometry.values  # WGS84, all but the three mapped
    assert len(outlines) == len(expected)
    for g in expected:
        assert min(shapely.hausdorff_distance(g, o) for o in outlines) < 2e-7  # osmium's 7 decimals
    # geounet reads its own .osm back (negative ids), e.g. as --existing of the next run
    res = run("vectorize", crop / "p.tif", "-o", crop / "again.gpkg", "--existing", crop / "todo.osm", "--only-new")
    assert res.exit_code == 0, res.output
    assert len(gpd.read_file(crop / "again.gpkg")) == 3


def test_osm_output_writes_holes_as_multipolygons(tmp_path):
    from geounet.io.vector import VectorWriter

    ring = shapely.box(500000, 4000000, 500020, 4000020)
    holed = shapely.Polygon(ring.exterior.coords, [shapely.box(500005, 4000005, 500010, 4000010).exterior.coords])
    w = VectorWriter(tmp_path / "h.osm", "EPSG:32633")
    w.write(np.array([shapely.box(500030, 4000000, 500040, 4000010), holed], dtype=object), np.ones(2), np.ones(2))
    w.commit()
    objs = [(o.type_str(), o.id, dict(o.tags), [(m.type, m.ref, m.role) for m in getattr(o, "members", [])])
            for o in osmium.FileProcessor(str(tmp_path / "h.osm"))]
    assert [o[0] for o in objs] == ["n"] * 12 + ["w"] * 3 + ["r"]
    _, _, tags, members = objs[-1]
    assert tags == {"type": "multipolygon", "building": "yes", "source": "geounet"}
    assert members == [("w", -14, "outer"), ("w", -15, "inner")] and objs[13][2] == {} and objs[14][2] == {}
    back = gpd.read_file(tmp_path / "h.osm", layer="multipolygons", USE_CUSTOM_INDEXING="NO")
    assert sorted(len(g.geoms[0].interiors) for g in back.geometry) == [0, 1]


def test_preview_is_the_downsampled_raster_with_outlines_and_hatched_nodata(crop, tmp_path):
    picture = np.asarray(Image.open(crop / "p.png").convert("RGB"))
    assert picture.shape == (600, 600, 3)  # smaller than the preview size: the raster's own
    corner = picture[MASKED].reshape(-1, 3)
    assert {tuple(c) for c in corner} == {tuple(c) for c in NODATA_COLOURS}
    assert (picture == (255, 230, 0)).all(axis=-1).sum() > 1000  # footprint outlines


def test_preview_of_a_large_raster_is_downsampled(tmp_path):
    from geounet.io.preview import PreviewWriter

    img = np.full((1, 1000, 3000), 7000, np.uint16)  # one band, uint16: stretched, grey
    img[0, :, 1500:] = 9000
    valid = np.ones((1000, 3000), bool)
    valid[600:, :900] = False
    tif = write_raster(tmp_path / "big.tif", img, valid=valid, block=256)
    writer = PreviewWriter(tmp_path / "big.png", tif, bands=(1,), size=2000)
    with rasterio.open(tif) as src:
        t = src.transform
    building = shapely.box(*(t @ (2000, 300)), *(t @ (2300, 100)))  # columns 2000-2300, rows 100-300
    writer.add(np.array([building], dtype=object))
    writer.render()
    assert not (tmp_path / "big.png").exists()  # under its temporary name until commit
    writer.commit()
    picture = np.asarray(Image.open(tmp_path / "big.png").convert("RGB"))
    assert picture.shape == (667, 2000, 3) == (*preview_shape(1000, 3000, 2000), 3)
    nodata = picture[420:, :580].reshape(-1, 3)  # rows 600+, columns < 900 of the raster, scaled by 2/3
    assert {tuple(c) for c in nodata} == {tuple(c) for c in NODATA_COLOURS}
    assert tuple(picture[300, 700]) == (0, 0, 0) and tuple(picture[300, 1300]) == (255, 255, 255)
    outline = (picture == (255, 230, 0)).all(axis=-1)
    r, c = np.nonzero(outline)
    assert abs(r.min() - 67) <= 1 and abs(r.max() - 200) <= 1 and abs(c.min() - 1333) <= 1 and abs(c.max() - 1533) <= 1


def test_several_inputs_write_osm_files_and_pictures_into_folders(tmp_path):
    from helpers_predict import constant_checkpoint, scene

    ckpt = constant_checkpoint(tmp_path / "c.pt", logit=3.0)  # every valid pixel a building
    valid = np.ones((96, 128), bool)
    valid[:, :40] = False
    for name in ("a", "b"):
        write_raster(tmp_path / f"{name}.tif", scene((96, 128)), valid=valid, block=32)
    res = run("predict", tmp_path / "a.tif", tmp_path / "b.tif", "-o", tmp_path / "out", "--format", "osm",
              "--preview", tmp_path / "pics", "--model", ckpt)
    assert res.exit_code == 0, res.output
    assert res.stdout.split() == [str(tmp_path / "out" / "a.osm"), str(tmp_path / "out" / "b.osm")]
    for name in ("a", "b"):
        ways = [dict(o.tags) for o in osmium.FileProcessor(str(tmp_path / "out" / f"{name}.osm")) if o.is_way()]
        assert ways == [{"building": "yes", "source": "geounet"}]
        picture = np.asarray(Image.open(tmp_path / "pics" / f"{name}_preview.png").convert("RGB"))
        assert picture.shape == (96, 128, 3)
        assert {tuple(c) for c in picture[:, :39].reshape(-1, 3)} == {tuple(c) for c in NODATA_COLOURS}
    res = run("predict", tmp_path / "a.tif", "-o", tmp_path / "x.gpkg", "--preview", tmp_path / "x.jpg", "--model", ckpt)
    assert res.exit_code == 1 and "--preview must name a PNG (.png) file" in res.stderr
