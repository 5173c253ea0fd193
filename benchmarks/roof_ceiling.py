"""How far object F1 can go on labels that draw a roof as several polygons (docs/model.md, fine-tuning).

Footprints within ``--gap`` metres of each other are one roof (their union). A model that outlined every
roof perfectly, as one polygon, matches at IoU 0.5 at most one footprint of each roof (the largest face, or
the roof itself when it is one footprint), so its object F1 against the footprints is::

    F1 = 2 * matched / (footprints + roofs)

    python benchmarks/roof_ceiling.py /work/runs/ft-nacala/nacala_east.gpkg /work/runs/ft-nacala/nacala_west.gpkg

(the split files that benchmarks/finetune_eval.py writes: ``OUT/PLACE_east.gpkg``, ``OUT/PLACE_west.gpkg``).
"""

from __future__ import annotations

import argparse

import geopandas as gpd
from shapely.ops import unary_union


def roof_ceiling(path: str, gap: float) -> tuple[int, int, int, float]:
    """(footprints, roofs, footprints a perfect roof outline matches, its object F1) of the file at ``path``."""
    t = gpd.read_file(path)
    t = t.to_crs(t.estimate_utm_crs())
    merged = unary_union(t.geometry.buffer(gap / 2))
    roofs = list(getattr(merged, "geoms", [merged]))
    matched = 0
    for roof in roofs:
        faces = [p for p in t.geometry if p.intersects(roof)]
        whole = unary_union(faces)
        matched += max(p.intersection(whole).area / p.union(whole).area for p in faces) >= 0.5
    return len(t), len(roofs), matched, 2 * matched / (len(t) + len(roofs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("labels", nargs="+")
    ap.add_argument("--gap", type=float, default=0.3, help="metres between footprints of one roof")
    a = ap.parse_args()
    print("| labels | footprints | roofs | matched by perfect roofs | object F1 ceiling |")
    print("|---|---|---|---|---|")
    for path in a.labels:
        n, k, m, f1 = roof_ceiling(path, a.gap)
        print(f"| {path} | {n} | {k} | {m} | **{f1:.3f}** |")


if __name__ == "__main__":
    main()
