#!/usr/bin/env bash
# The CUDA path end to end, briefly: for each precision (bf16, fp16) HDCN x2 trained and
# evaluated, SS-GAN trained through both phases on the synthetic scenes and evaluated; then
# `sr upscale`, `seg predict` (the shipped CamVid model) and the segmentation training step
# timed by `densekit bench --sections models`. Stops at the first failure.
#
#   DEVICE=cuda SR_DATA=../shared/data/sr scripts/cuda_check.sh [OUT]     (OUT: runs/cuda_check)
#
# SR_DATA needs Set5 (the SR runs train and validate on it: a check, not a benchmark). ITERS
# sets the steps per run (default 100), PRECISIONS the precisions (default "bf16 fp16"),
# DEVICE=cpu runs the same on the CPU, BENCH=0 leaves out the bench.
set -euo pipefail
DK=${DK:-.venv/bin/densekit}
DEV=${DEVICE:-cuda}
SR=${SR_DATA:-../shared/data/sr}
ITERS=${ITERS:-100}
OUT=${1:-runs/cuda_check}
mkdir -p "$OUT"
step() { echo "== $*" >&2; local t=$SECONDS; "$@"; echo "== ok in $((SECONDS - t)) s" >&2; }

for P in ${PRECISIONS:-bf16 fp16}; do
  step "$DK" sr train --config configs/sr/hdcn_cpu_kaiming.yaml --set model.scale=2 --set train.epochs=1 \
    --set train.iters_per_epoch="$ITERS" --set "data.train=[$SR/Set5]" --set "data.val=[$SR/Set5]" \
    --set engine.progress=false --set engine.out_dir="$OUT/sr_$P" --device "$DEV" --precision "$P"
  step "$DK" sr eval --model hdcn --scale 2 --weights "$OUT/sr_$P/weights.pt" --data "$SR/Set5" \
    --device "$DEV" --precision "$P" --json > "$OUT/sr_$P.json"
  half=$(( (ITERS + 1) / 2 ))
  step "$DK" seg train --config configs/seg/synthetic.yaml --set train.phase1_epochs=1 \
    --set train.phase2_epochs=1 --set train.iters_per_epoch="$half" --set engine.progress=false \
    --set engine.out_dir="$OUT/seg_$P" --device "$DEV" --precision "$P"
  step "$DK" seg eval --config configs/seg/synthetic.yaml --weights "$OUT/seg_$P/weights.pt" \
    --device "$DEV" --precision "$P" --json > "$OUT/seg_$P.json"
done
step "$DK" sr upscale "$SR/Set5" --scale 2 -o "$OUT/upscale" --device "$DEV"
step "$DK" seg predict src/densekit/demo_data/camvid/val -o "$OUT/predict" --device "$DEV"
if [ "${BENCH:-1}" != 0 ]; then
  step "$DK" bench --sections models --device "$DEV" --json > "$OUT/bench.json"
fi
echo "all checks passed; results in $OUT"
