#!/usr/bin/env bash
# The CamVid SS-GAN experiment behind the README table, with the project's own commands.
# For each generator and seed: phase 1 (G alone), then from its weights
#   ssgan:   phase 2, adversarial (the paper's settings);
#   control: phase 2 with lambda = 0 (the same steps, G optimizer, schedule and data without the
#            adversarial term: "phase 1 continued for the same number of steps without D").
# Idempotent: a finished run (weights.pt present) is skipped, an interrupted one resumes.
# Usage: scripts/seg_experiments.sh [GENERATOR...]   (default: fcn8s_vgg16 deeplab_r50)
# Environment: SEEDS (default "1 2 3"), PROFILE (default camvid_cpu: half resolution, 3k + 3k
# steps; camvid_small: 1/3 resolution, one session on 2 cores, one thread per run, so run one
# generator per process side by side, as for the README table; camvid = full 360x480 paper
# schedule for a GPU), OUT (default runs/seg_exp), EXTRA (more --set args).
# README table: PROFILE=camvid_small OUT=runs/seg_small scripts/seg_experiments.sh fcn8s_vgg16 &
#               PROFILE=camvid_small OUT=runs/seg_small scripts/seg_experiments.sh deeplab_r50
# Then: .venv/bin/python scripts/seg_table.py $OUT
set -euo pipefail
DK=${DK:-.venv/bin/densekit}
SEEDS=${SEEDS:-1 2 3}
PROFILE=${PROFILE:-camvid_cpu}
OUT=${OUT:-runs/seg_exp}
read -r -a EXTRA <<< "${EXTRA:-}"

run() {  # run OUT_DIR ARGS...: train into OUT_DIR unless it is finished
  local out=$1; shift
  if [ -f "$out/weights.pt" ]; then echo "done: $out"; return; fi
  echo "train: $out"
  "$DK" seg train "$@" "${EXTRA[@]/#/--set=}" --set engine.out_dir="$out" \
    --set engine.progress=false --resume auto
}

for g in "${@:-fcn8s_vgg16 deeplab_r50}"; do
  for gen in $g; do
    cfg=configs/seg/${gen}_${PROFILE}.yaml
    for s in $SEEDS; do
      base="$OUT/${gen}_s$s"
      run "$base/phase1" --config "$cfg" --set engine.seed="$s" --set train.phase2_epochs=0
      p2=(--config "$cfg" --set engine.seed="$s" --set train.phase1_epochs=0
          --set train.init_from="$base/phase1/weights.pt")
      run "$base/ssgan" "${p2[@]}"
      run "$base/control" "${p2[@]}" --set train.adversarial.lam=0 \
        --set train.adversarial.guard=false
    done
  done
done
