import geopandas as gpd
import numpy as np
from affine import Affine
from shapely.geometry import box

from geounet.labels import drop_contained, read_labels
from geounet.train.targets import OUTPUTS_SEPARATION, derive_targets

UTM = "EPSG:32633"


def test_drop_contained_keeps_the_whole_building_and_its_neighbours():
    whole = box(0, 0, 10, 8)
    geoms = gpd.GeoSeries(
        [
            box(0, 0, 6, 8),  # clipped copy of `whole` (left part, as cut at a chip edge)
            whole,
            box(10, 0, 16, 8),  # neighbour sharing a wall: kept
            box(15.8, 0, 22, 8),  # neighbour overlapping the previous by a sliver: kept
            box(0, 0, 10, 8),  # exact copy of `whole`: dropped, the first copy stays
            box(30, 30, 30, 40),  # zero area: dropped
        ],
        index=[10, 11, 12, 13, 14, 15],
    )
    kept, dropped = drop_contained(geoms)
    assert dropped == 3
    assert list(kept.index) == [11, 12, 13]
    assert kept.union_all().area == geoms.union_all().area  # same building pixels


def test_drop_contained_threshold_and_empty():
    big, part = box(0, 0, 10, 10), box(-1, 0, 9, 10)  # 90% of `part` lies inside `big`
    assert drop_contained(gpd.GeoSeries([big, part]))[1] == 1
    assert drop_contained(gpd.GeoSeries([big, box(-2, 0, 8, 10)]))[1] == 0  # 80%: a different building
    empty = gpd.GeoSeries([], dtype="geometry")
    assert drop_contained(empty)[1] == 0


def test_read_labels_drops_clipped_copies_so_no_false_contact(tmp_path):
    """A building listed whole and as a chip-clipped copy is one building: no contact zone across it."""
    x0, y0 = 500000.0, 4000000.0
    whole = box(x0 + 2, y0 - 8, x0 + 8, y0 - 2)
    clipped = box(x0 + 2, y0 - 8, x0 + 5, y0 - 2)
    path = tmp_path / "labels.geojson"
    gpd.GeoDataFrame(geometry=[clipped, whole], crs=UTM).to_crs("EPSG:4326").to_file(path)
    labels = read_labels(path, UTM, (x0, y0 - 10, x0 + 10, y0))
    assert len(labels) == 1
    inst = labels.rasterize_instances(Affine(0.1, 0, x0, 0, -0.1, y0), (100, 100))
    assert set(np.unique(inst)) == {0, 1 + 0}
    t = derive_targets(inst, OUTPUTS_SEPARATION, 0.1)
    assert t[..., 0].sum() == 60 * 60 and t[..., 2].sum() == 0
