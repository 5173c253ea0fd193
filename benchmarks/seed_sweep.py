"""Sweep separation's seed settings and --min-area on held-out probabilities: what splits buildings
best on places a model never saw.

    python benchmarks/lopo_eval.py RUNS --modes plain --keep-probs --out /tmp/lopo-eval   # probabilities first
    python benchmarks/seed_sweep.py /tmp/lopo-eval/plain [--places banepa,zanzibar,...]

For each place, the ``--probs`` files that its leave-one-place-out model wrote (``EVAL/PLACE/probs/*.tif``)
are vectorised again (``geounet vectorize``'s library call, so predict's polygons exactly) under every
combination of ``score_seed_threshold`` x ``seed_min_m2`` x ``reach_m`` x ``seed_min_max_px``
(SeparationSettings), and without
separation, and scored with ``geounet evaluate``'s object matching (IoU 0.5; pixel IoU does not depend on
these settings) for each ``--min-area`` in the list: a file is vectorised once with ``min_area`` 0 and its
polygons below each minimum are dropped afterwards, which is what predict's ``--min-area`` does (it drops
finished buildings by their ``area_m2``). Prints per-place object F1, the mean over places, and, to say
how well a choice made on some places carries to another, the leave-one-place-out choice: for each place,
the setting with the best mean F1 on the *other* places, scored on that place. No model runs: minutes on
two cores.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lopo_eval import PLACES, SHARED, inputs  # noqa: E402

from geounet import metrics  # noqa: E402
from geounet.evaluate import ReferenceFootprints, read_footprints  # noqa: E402
from geounet.predict.from_probs import vectorize_probs  # noqa: E402
from geounet.predict.settings import PolygonSettings, SeparationSettings, VectorizeConfig  # noqa: E402


def score(pairs: list[tuple[Path, ReferenceFootprints]], work: Path, settings: dict,
          min_areas: list[float]) -> list[tuple[int, int, int]]:
    """Pooled (TP, FP, FN) of one place's probability files vectorised with ``settings``, per minimum area."""
    counts = np.zeros((len(min_areas), 3), dtype=np.int64)
    for probs, truth in pairs:
        out = work / f"{probs.stem}.gpkg"
        vectorize_probs(VectorizeConfig(input=probs, output=out, overwrite=True, progress=False, min_area=0.0,
                                        **settings))
        pred = gpd.read_file(out)
        for k, m in enumerate(min_areas):
            keep = (pred["area_m2"] >= m).to_numpy() if len(pred) else np.zeros(0, bool)
            counts[k] += truth.match(pred.geometry[keep])
    return [tuple(int(v) for v in c) for c in counts]


def f1(tp: int, fp: int, fn: int) -> float:
    """Object F1 of pooled counts, by the project's one definition (:mod:`geounet.metrics`)."""
    return metrics.f1(metrics.precision(tp, fp), metrics.recall(tp, fn))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir", help="OUT/MODE of benchmarks/lopo_eval.py --keep-probs")
    ap.add_argument("--shared", default=str(SHARED))
    ap.add_argument("--places", default=",".join(PLACES))
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--seed-min-m2", default="2,4,8,16")
    ap.add_argument("--reach-m", default="2,3,5")
    ap.add_argument("--min-area", default="2,4,8")
    ap.add_argument("--seed-min-max-px", default=str(SeparationSettings().seed_min_max_px),
                    help="caps of the seed size in pixels to try (the streamed context of the seed filter)")
    ap.add_argument("--top", type=int, default=20, help="Rows of the table (best mean F1 first; the defaults always)")
    a = ap.parse_args()
    root, shared = Path(a.eval_dir), Path(a.shared)
    places = a.places.split(",")
    min_areas = [float(v) for v in a.min_area.split(",")]
    seeds = [{"separate": False}] + [
        {"separate": True, "score_seed_threshold": t, "seed_min_m2": m, "reach_m": r, "seed_min_max_px": int(c)}
        for t, m, r, c in itertools.product(*(map(float, s.split(",")) for s in (a.thresholds, a.seed_min_m2,
                                                                                   a.reach_m, a.seed_min_max_px)))
    ]
    defaults = SeparationSettings()
    print(f"defaults: score_seed_threshold {defaults.score_seed_threshold}, seed_min_m2 {defaults.seed_min_m2}, "
          f"reach_m {defaults.reach_m}, seed_min_max_px {defaults.seed_min_max_px}", file=sys.stderr)
    grid = [dict(s, min_area=m) for s in seeds for m in min_areas]
    table: dict[int, dict[str, tuple[int, int, int]]] = {k: {} for k in range(len(grid))}
    with tempfile.TemporaryDirectory() as tmp:
        for place in places:
            truths = {r.stem: t for r, t in inputs(shared, place, Path(tmp) / "truth")}
            files = sorted((root / place / "probs").glob("*.tif"))  # predict names them RASTER_probs.tif
            pairs = [(p, ReferenceFootprints.prepare(read_footprints(truths[p.stem.removesuffix("_probs")], "true")))
                     for p in files]
            if not pairs:
                sys.exit(f"{root / place / 'probs'}: no probability files (run lopo_eval.py --keep-probs)")
            for i, settings in enumerate(seeds):
                for j, c in enumerate(score(pairs, Path(tmp), settings, min_areas)):
                    table[i * len(min_areas) + j][place] = c
            print(f"{place}: done", file=sys.stderr, flush=True)

    def mean_f1(k: int, over: list[str]) -> float:
        return sum(f1(*table[k][p]) for p in over) / len(over)

    print("| setting | " + " | ".join(places) + " | mean F1 |")
    print("|---|" + "---|" * (len(places) + 1))
    d = {"separate": True, "score_seed_threshold": defaults.score_seed_threshold, "seed_min_m2": defaults.seed_min_m2,
         "reach_m": defaults.reach_m, "seed_min_max_px": defaults.seed_min_max_px,
         "min_area": PolygonSettings().min_area}
    ranked = sorted(table, key=lambda k: -mean_f1(k, places))
    for k in [k for r, k in enumerate(ranked) if r < a.top or grid[k] == d]:
        s = grid[k]
        name = ("no separation" if not s["separate"] else
                f"seed {s['score_seed_threshold']:g}, min {s['seed_min_m2']:g} m2 (<= {s['seed_min_max_px']} px), "
                f"reach {s['reach_m']:g} m")
        name += f", min-area {s['min_area']:g} m2" + (" (defaults)" if s == d else "")
        cells = " | ".join(f"{f1(*table[k][p]):.3f}" for p in places)
        print(f"| {name} | {cells} | **{mean_f1(k, places):.3f}** |")
    if len(places) > 1:
        print("\nChosen on the other places, scored on this one:\n")
        print("| place | chosen setting | object F1 |")
        print("|---|---|---|")
        for p in places:
            others = [q for q in places if q != p]
            k = max(table, key=lambda k: mean_f1(k, others))
            print(f"| {p} | {grid[k]} | {f1(*table[k][p]):.3f} |")


if __name__ == "__main__":
    main()
