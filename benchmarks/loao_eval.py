"""Evaluate leave-one-area-out runs: predict each held-out area with the model trained on the other two,
then score the footprints with `geounet evaluate` (object F1 at IoU 0.5, pixel IoU inside the valid area).

Usage: python benchmarks/loao_eval.py RUNS_DIR [--shared ../shared/data] [--extra-predict-args "..."]
RUNS_DIR holds the folders written by scripts/loao_train.sh (test-AREA-separation, test-AREA-no-separation).
Each row: model (trained with or without separation targets) x predict mode (--separate or --no-separate).
Prints a Markdown table on stdout; predictions go to RUNS_DIR/eval/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

AREAS = ["banepa", "zanzibar", "banepa_z20"]


def sh(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--extra-predict-args", default="")
    ap.add_argument("--modes", default="separate,no-separate")
    a = ap.parse_args()
    runs, shared = Path(a.runs), Path(a.shared)
    out = runs / "eval"
    out.mkdir(exist_ok=True)
    rows = []
    for area in AREAS:
        tif = shared / area / f"{area}.tif"
        truth = shared / area / f"{area}_buildings.geojson"
        for trained in ("separation", "no-separation"):
            ckpt = runs / f"test-{area}-{trained}" / "best.pt"
            if not ckpt.exists():
                continue
            modes = a.modes.split(",") if trained == "separation" else ["no-separate"]
            for mode in modes:
                pred = out / f"{area}-{trained}-{mode}.gpkg"
                t0 = time.time()
                sh(["geounet", "-q", "predict", str(tif), "-o", str(pred), "--model", str(ckpt), f"--{mode}",
                    "--overwrite", *shlex.split(a.extra_predict_args)])
                secs = time.time() - t0
                res = json.loads(sh(["geounet", "evaluate", str(pred), str(truth), "--raster", str(tif), "--json"]))
                p = res["pairs"][0]
                rows.append((area, trained, mode, p["tp"], p["fp"], p["fn"], p["precision"], p["recall"], p["f1"],
                             p["pixel"]["iou"], secs))
                print(f"{area} {trained} {mode}: F1 {p['f1']:.3f} pixel IoU {p['pixel']['iou']:.3f}", file=sys.stderr)
    print("| held-out area | model trained | predict | TP | FP | FN | precision | recall | object F1 | pixel IoU | predict s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | --{r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:.3f} | {r[7]:.3f} | **{r[8]:.3f}** | {r[9]:.3f} | {r[10]:.0f} |")


if __name__ == "__main__":
    main()
