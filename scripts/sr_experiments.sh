#!/usr/bin/env bash
# Every SR training run behind the README tables, with the project's own commands.
# Idempotent: a finished run (weights.pt present) is skipped, an interrupted one resumes.
# Usage: scripts/sr_experiments.sh [ship|baselines|ablation|x3] ...   (default: all)
# Run from the repository root, e.g. nohup scripts/sr_experiments.sh ship > runs/ship.log &
set -euo pipefail
DK=${DK:-.venv/bin/densekit}

run() {  # run OUT_DIR ARGS...: train into OUT_DIR unless it is finished
  local out=$1; shift
  if [ -f "$out/weights.pt" ]; then echo "done: $out"; return; fi
  echo "train: $out"
  "$DK" sr train "$@" --set engine.out_dir="$out" --set engine.progress=false --resume auto
}

ship() {  # the shipped HDCN weights
  for s in 2 4 3; do
    run runs/sr_cpu/hdcn_kaiming_x$s --config configs/sr/hdcn_cpu_kaiming.yaml --set model.scale=$s
  done
}

baselines() {  # SRCNN, VDSR, REDNet on the same data and budget as HDCN
  for m in srcnn vdsr rednet; do
    for s in 2 4 3; do
      run runs/sr_cpu/${m}_x$s --config configs/sr/${m}_cpu.yaml --set model.scale=$s \
        --set model.options="{}"
    done
  done
}

ablation() {  # paper Fig. 5 and Table 1 at x2, same budget as the shipped x2 model
  local base=(--config configs/sr/hdcn_cpu_kaiming.yaml --set model.scale=2)
  run runs/sr_cpu/abl_paper_init_x2 --config configs/sr/hdcn_cpu.yaml --set model.scale=2
  run runs/sr_cpu/abl_no_encdec_x2 "${base[@]}" --set model.options.encdec=false
  run runs/sr_cpu/abl_no_dilation_x2 "${base[@]}" --set model.options.dilation=false
  run runs/sr_cpu/abl_neither_x2 "${base[@]}" --set model.options.encdec=false \
    --set model.options.dilation=false
  for k in none local long; do
    run runs/sr_cpu/abl_skips_${k}_x2 "${base[@]}" --set model.options.skips=$k
  done
}

x3() {  # upsampler choice at x3
  for u in bicubic pixelshuffle; do
    run runs/sr_cpu/x3_up_${u} --config configs/sr/hdcn_cpu_kaiming.yaml --set model.scale=3 \
      --set model.options.upsampler=$u
  done
}

for part in "${@:-ship baselines ablation x3}"; do
  for p in $part; do "$p"; done
done
