"""Footprints as an OpenStreetMap XML file that JOSM opens: new objects, ready to review and upload.

Written with pyosmium (libosmium's writer), not by hand: ``<osm version="0.6"
generator="geounet ...">``, every node before every way, every way before every relation.
Each footprint is a closed way tagged ``building=yes`` and ``source=geounet``; a footprint
with holes is a ``type=multipolygon`` relation with those tags, its outer and inner rings
untagged ways. Ids are negative (new objects to JOSM and the OSM API) and unique across
nodes, ways and relations. Coordinates are WGS84 longitude/latitude, 7 decimals (1 cm);
neighbouring buildings do not share nodes.

:func:`write_osm` reads the footprints in chunks from the spill GeoPackage of
:class:`geounet.io.vector.VectorWriter` (already in WGS84), once for the nodes, once for
the ways, once for the relations, so memory does not grow with their number; the ids are
the same in each pass because the order is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import shapely

__all__ = ["TAGS", "write_osm"]

TAGS = {"building": "yes", "source": "geounet"}
CHUNK = 20_000  # footprints read from the spill at a time


def _chunks(spill: Path, layer: str) -> Iterator[np.ndarray]:
    """The spill's polygons, ``CHUNK`` at a time, in file order."""
    from pyogrio.raw import read

    start = 0
    while True:
        _, _, wkb, _ = read(spill, layer=layer, columns=[], skip_features=start, max_features=CHUNK)
        if wkb is None or not len(wkb):
            return
        yield shapely.from_wkb(wkb)
        start += len(wkb)


def _rings(polygon) -> list[np.ndarray]:
    """The rings' coordinates, exterior first, without the closing repeat."""
    rings = [polygon.exterior, *polygon.interiors]
    return [np.asarray(r.coords)[:-1] for r in rings]


def write_osm(spill: Path, layer: str, path: Path, generator: str) -> None:
    """Write the polygons (WGS84) of ``layer`` of the GeoPackage ``spill`` to ``path`` as OSM XML.

    Ids: nodes ``-1 .. -N`` ring by ring, then ways ``-(N + 1) ..`` one per ring, then
    relations, one per polygon with holes.
    """
    import osmium
    from osmium.osm import mutable

    header = osmium.io.Header()
    header.set("generator", generator)
    writer = osmium.SimpleWriter(str(path), header=header, overwrite=True)
    try:
        node = 0
        for polygons in _chunks(spill, layer):  # pass 1: the nodes
            for poly in polygons:
                for ring in _rings(poly):
                    for x, y in ring:
                        node -= 1
                        writer.add_node(mutable.Node(id=node, location=(float(x), float(y))))
        way, node, holed = node, 0, False
        for polygons in _chunks(spill, layer):  # pass 2: a closed way per ring
            for poly in polygons:
                rings = _rings(poly)
                holed |= len(rings) > 1
                for ring in rings:
                    ids = list(range(node - 1, node - 1 - len(ring), -1))
                    node, way = node - len(ring), way - 1
                    writer.add_way(mutable.Way(id=way, nodes=ids + ids[:1], tags=TAGS if len(rings) == 1 else {}))
        if holed:  # pass 3: a multipolygon relation per polygon with holes
            relation, way = way, node  # way ids again from just after the last node id
            for polygons in _chunks(spill, layer):
                for poly in polygons:
                    n = 1 + len(poly.interiors)
                    if n > 1:
                        members = [("w", way - 1 - k, "inner" if k else "outer") for k in range(n)]
                        relation -= 1
                        writer.add_relation(mutable.Relation(id=relation, members=members,
                                                             tags={"type": "multipolygon", **TAGS}))
                    way -= n
    finally:
        writer.close()
