#!/usr/bin/env bash
# Train on a device machine (one H200, 16 cores) in one call of the device tool (docs/model.md, "Trained
# on a GPU"): the default's recipe at width 24 on all six folders (the `large` model), and beside it, at
# the same time on the same GPU, the width-24 leave-one-place-out folds that the CPU has not trained.
#
#   python scripts/gpu_data.py ../shared/data .gpu/data   # here, once: the data, 6 MB (see there)
#   benchmarks/gpu_deps.sh                                 # here, once: .gpu/site.tar.xz
#   run(command="scripts/gpu_train.sh", carry=[".gpu"], timeout_s=420)       # device tool
#   SMOKE=1 scripts/gpu_train.sh                           # 3 epochs of the large run: does it work, how fast
#   python scripts/gpu_unpack.py /work/.device/N runs/gpu  # here, after: run folders; then lopo_eval.py runs/gpu/folds
#
# Environment: MINUTES (budget of each run, default 5.5: the learning rate follows it, see lr_at),
# WIDTH (24), LARGE (1; 0: folds only), LARGE_EPOCHS (250), FOLD_EPOCHS (50), FOLDS (banepa nacala
# coxsbazar), FOLD_ARGS (more `geounet train` options for the folds, e.g. --no-separation for an
# ablation), DEVICE (cuda), OUT. Five folds and no large run fit the 16 cores as well (3 workers each).
# Runs go to /tmp/geounet-gpu-runs; what comes back goes to $OUT: the models packed in parts of at most
# 15 MiB (the device tool returns at most 8 files of 16 MiB) as models.tar.part-*, the large run's best.pt
# as saved and the folds' best.pt with float16 weights (the device tool returns 64 MiB at most; see
# docs/model.md for what the rounding changes), and train_logs.tar.gz (metrics, curves, logs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-train}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh || exit 2
export OMP_NUM_THREADS=2
if [ -z "${SHARED_DATA:-}" ]; then  # the packed copy, its polygons gunzipped
  SHARED_DATA=/tmp/geounet-gpu-data
  rm -rf "$SHARED_DATA" && cp -r .gpu/data "$SHARED_DATA" && gunzip -r "$SHARED_DATA" || exit 2
  export SHARED_DATA
fi
RUNS=/tmp/geounet-gpu-runs
rm -rf "$RUNS" && mkdir -p "$RUNS"
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-5.5}
FOLDS=${FOLDS-banepa nacala coxsbazar}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
t0=$(date +%s)
if [ -n "${SMOKE:-}" ]; then
  EXTRA_ARGS="--width ${WIDTH:-24} --epochs 3 --workers 6 --device $DEVICE" scripts/train_default.sh "$RUNS/large24" 2 \
    2>&1 | tee "$RUNS/large24.log"
  rc=${PIPESTATUS[0]}
  cat "$RUNS/large24/metrics.csv" 2>/dev/null
  echo "smoke: exit $rc after $(( $(date +%s) - t0 )) s"
  exit "$rc"
fi
WIDTH=${WIDTH:-24}
pids=()
if [ "${LARGE:-1}" != 0 ]; then  # the large run: the default's recipe (scripts/train_default.sh) at WIDTH
  EXTRA_ARGS="--width $WIDTH --epochs ${LARGE_EPOCHS:-250} --max-minutes $MINUTES --workers 5 --device $DEVICE" \
    scripts/train_default.sh "$RUNS/large24" > "$RUNS/large24.log" 2>&1 &
  pids+=($!)
fi
for place in $FOLDS; do  # each fold alone in its own process, beside the large run
  HELD_OUT=$place EPOCHS=${FOLD_EPOCHS:-50} \
    EXTRA_ARGS="--width $WIDTH --max-minutes $MINUTES --workers 3 --device $DEVICE ${FOLD_ARGS:-}" \
    scripts/lopo_train.sh "$RUNS/folds" > "$RUNS/fold-$place.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
echo "training: exit $rc after $(( $(date +%s) - t0 )) s"
for f in "$RUNS"/*.log; do echo "== $f"; tail -4 "$f"; done
# Pack what comes back (see the header): the large model as saved, the folds' weights as float16.
"$PY" - "$RUNS" "$OUT" <<'PY'
import io, sys, tarfile
from pathlib import Path
import torch
sys.path.insert(0, "scripts")
from gpu_unpack import round_to_half
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
models = io.BytesIO()
with tarfile.open(fileobj=models, mode="w") as tar:
    if (runs / "large24" / "best.pt").exists():
        tar.add(runs / "large24" / "best.pt", "large24/best.pt")
    for best in sorted((runs / "folds").glob("*/best.pt")):
        ckpt = torch.load(best, map_location="cpu", weights_only=False)
        ckpt["state_dict"] = round_to_half(ckpt["state_dict"])
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        info = tarfile.TarInfo(f"folds/{best.parent.name}/best_fp16.pt")
        info.size = buf.tell()
        buf.seek(0)
        tar.addfile(info, buf)
data, part = models.getvalue(), 15 * 2**20
for i in range(0, len(data), part):
    (out / f"models.tar.part-{i // part}").write_bytes(data[i:i + part])
with tarfile.open(out / "train_logs.tar.gz", "w:gz") as tar:
    for f in sorted(runs.rglob("*")):
        if f.is_file() and f.suffix in (".csv", ".png", ".log"):
            tar.add(f, str(f.relative_to(runs)))
print(f"packed {len(data) / 2**20:.1f} MiB of models into {out}")
PY
exit $rc
