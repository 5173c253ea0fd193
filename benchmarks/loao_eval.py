"""Evaluate leave-one-area-out runs: predict each held-out area with the model trained on the other two,
then score the footprints with `geounet evaluate` (object F1 at IoU 0.5, pixel IoU inside the valid area).

Usage: python benchmarks/loao_eval.py RUNS_DIR [RUNS_DIR ...] [--shared ../shared/data] [--extra-predict-args "..."]
Each RUNS_DIR holds the folders written by scripts/loao_train.sh (test-AREA-CONFIG for CONFIG in
separation, no-separation, weight-map), e.g. one RUNS_DIR per seed.
Each row: model (trained with separation targets, without, or with the U-Net weight map) x predict mode
(--separate or --no-separate; --separate seeds on border/contact outputs when the model has them, else on
its eroded confident building probability).
Prints Markdown tables on stdout: every run, then the mean over the RUNS_DIRs of each configuration.
Predictions go to RUNS_DIR/eval/. True footprints inside a larger one are not counted (evaluate's default).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

AREAS = ["banepa", "zanzibar", "banepa_z20"]
CONFIGS = ["separation", "no-separation", "weight-map"]


def sh(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def evaluate_runs(runs: Path, shared: Path, modes: list[str], extra: list[str]) -> list[dict]:
    out = runs / "eval"
    out.mkdir(exist_ok=True)
    rows = []
    for area in AREAS:
        tif = shared / area / f"{area}.tif"
        truth = shared / area / f"{area}_buildings.geojson"
        for trained in CONFIGS:
            ckpt = runs / f"test-{area}-{trained}" / "best.pt"
            if not ckpt.exists():
                continue
            for mode in modes:
                pred = out / f"{area}-{trained}-{mode}.gpkg"
                t0 = time.time()
                sh(["geounet", "-q", "predict", str(tif), "-o", str(pred), "--model", str(ckpt), f"--{mode}",
                    "--overwrite", *extra])
                secs = time.time() - t0
                res = json.loads(sh(["geounet", "evaluate", str(pred), str(truth), "--raster", str(tif), "--json"]))
                p = res["pairs"][0]
                rows.append(dict(runs=str(runs), area=area, trained=trained, mode=mode, tp=p["tp"], fp=p["fp"],
                                 fn=p["fn"], precision=p["precision"], recall=p["recall"], f1=p["f1"],
                                 pixel_iou=p["pixel"]["iou"], truth_dropped=p["truth_dropped"], secs=secs))
                print(f"{runs} {area} {trained} {mode}: F1 {p['f1']:.3f} pixel IoU {p['pixel']['iou']:.3f}",
                      file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--extra-predict-args", default="")
    ap.add_argument("--modes", default="separate,no-separate")
    a = ap.parse_args()
    rows = []
    for runs in a.runs:
        rows += evaluate_runs(Path(runs), Path(a.shared), a.modes.split(","), shlex.split(a.extra_predict_args))
        (Path(runs) / "eval" / "scores.json").write_text(json.dumps([r for r in rows if r["runs"] == runs], indent=1))
    print("| runs | held-out area | model trained | predict | TP | FP | FN | precision | recall | object F1 | pixel IoU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runs']} | {r['area']} | {r['trained']} | --{r['mode']} | {r['tp']} | {r['fp']} | {r['fn']} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | **{r['f1']:.3f}** | {r['pixel_iou']:.3f} |")
    groups = defaultdict(list)
    for r in rows:
        groups[(r["area"], r["trained"], r["mode"])].append(r)
    print()
    print("| held-out area | model trained | predict | runs | object F1 (mean, min-max) | pixel IoU (mean, min-max) |")
    print("|---|---|---|---|---|---|")
    for (area, trained, mode), rs in groups.items():
        f1 = [r["f1"] for r in rs]
        iou = [r["pixel_iou"] for r in rs]
        print(f"| {area} | {trained} | --{mode} | {len(rs)} | **{sum(f1) / len(f1):.3f}** ({min(f1):.3f}-{max(f1):.3f}) | "
              f"{sum(iou) / len(iou):.3f} ({min(iou):.3f}-{max(iou):.3f}) |")


if __name__ == "__main__":
    main()
