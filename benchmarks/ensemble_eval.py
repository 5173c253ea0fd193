"""Score an ensemble of models on held-out places: their probabilities averaged, then vectorised.

    python benchmarks/lopo_eval.py RUNS_A --modes plain --keep-probs --out EVAL_A   # each model first
    python benchmarks/lopo_eval.py RUNS_B --modes plain --keep-probs --out EVAL_B
    python benchmarks/ensemble_eval.py EVAL_A/plain EVAL_B/plain [...] --places joplin,nacala,coxsbazar

For each place, every ``--probs`` file (``EVAL/PLACE/probs/RASTER_probs.tif``) is averaged over the
given evaluations band by band (building, border, contact; the mean of the stored 0-255 levels,
rounded), which needs the models to share a working grid (the same pixel-size rule; checked), and
the average is vectorised with ``geounet vectorize``'s defaults and scored with ``geounet evaluate``
exactly as ``lopo_eval.py`` scores one model (object F1 at IoU 0.5, pixel IoU inside the valid area,
pooled over a place's rasters). Each member alone is scored the same way from its own probabilities,
so the table compares like with like. No model runs: minutes on two cores.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lopo_eval import SHARED, cell, evaluate_pooled, inputs, sh  # noqa: E402


def average(files: list[Path], out: Path) -> None:
    """The band-wise mean of ``files`` (same grid) written as a --probs file at ``out``, their masks ANDed."""
    srcs = [rasterio.open(f) for f in files]
    try:
        first = srcs[0]
        for s in srcs[1:]:
            if (s.shape, s.transform, s.crs, s.descriptions) != (first.shape, first.transform, first.crs,
                                                                 first.descriptions):
                sys.exit(f"{s.name}: another grid or other bands than {first.name}")
        levels = np.mean([s.read().astype(np.float32) for s in srcs], axis=0)
        valid = np.logical_and.reduce([s.dataset_mask() > 0 for s in srcs])
        profile = first.profile
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(out, "w", **profile) as dst:
            dst.write(np.rint(levels).astype(np.uint8))
            dst.scales = first.scales
            dst.descriptions = first.descriptions
            dst.write_mask(valid.astype(np.uint8) * 255)
    finally:
        for s in srcs:
            s.close()


def score(probs: list[Path], truths: dict[str, Path], rasters: dict[str, Path], work: Path, extra: list[str]) -> dict:
    """Vectorise each probability file with predict's defaults (and ``extra`` options) and evaluate them pooled."""
    triples = []
    for p in probs:
        stem = p.stem.removesuffix("_probs")
        gpkg = work / f"{stem}.gpkg"
        sh(["geounet", "-q", "vectorize", p, "-o", gpkg, "--overwrite", *extra])
        triples.append((gpkg, truths[stem], rasters[stem]))
    return evaluate_pooled(triples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("evals", nargs="+", help="OUT/MODE folders of lopo_eval.py --keep-probs, one per model")
    ap.add_argument("--shared", default=str(SHARED))
    ap.add_argument("--places", default="joplin,nacala,coxsbazar")
    ap.add_argument("--vectorize-args", default="", help='options for geounet vectorize, e.g. "--min-score 0"')
    a = ap.parse_args()
    extra = shlex.split(a.vectorize_args)
    evals = [Path(e) for e in a.evals]
    names = [f"{e.parent.name}" for e in evals] + [f"mean of {len(evals)}"]
    rows: dict[str, list[dict]] = {n: [] for n in names}
    places = a.places.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for place in places:
            pairs = inputs(Path(a.shared), place, tmp / "truth")
            truths = {r.stem: t for r, t in pairs}
            rasters = {r.stem: r for r, _ in pairs}
            files = sorted((evals[0] / place / "probs").glob("*_probs.tif"))
            if not files:
                sys.exit(f"{evals[0] / place / 'probs'}: no probability files (lopo_eval.py --keep-probs)")
            for e, name in zip(evals, names):
                work = tmp / name / place
                work.mkdir(parents=True)
                rows[name].append(score([e / place / "probs" / f.name for f in files], truths, rasters, work, extra))
            work = tmp / "mean" / place
            work.mkdir(parents=True)
            for f in files:
                average([e / place / "probs" / f.name for e in evals], work / f.name)
            rows[names[-1]].append(score([work / f.name for f in files], truths, rasters, work, extra))
            print(f"{place}: done", file=sys.stderr, flush=True)
    print("| model | " + " | ".join(places) + " | mean |")
    print("|---|" + "---|" * (len(places) + 1))
    for name in names:
        cells = " | ".join(cell(p) for p in rows[name])
        f1 = sum(p["f1"] for p in rows[name]) / len(places)
        iou = sum(p["pixel"]["iou"] for p in rows[name]) / len(places)
        print(f"| {name} | {cells} | **{f1:.3f} / {iou:.3f}** |")


if __name__ == "__main__":
    main()
