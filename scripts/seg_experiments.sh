#!/usr/bin/env bash
# The CamVid SS-GAN experiments of docs/results/results-seg.md, with the project's own commands.
# For each generator and seed: phase 1 (G alone), then from its weights
#   ssgan:   phase 2, adversarial (the paper's settings);
#   control: phase 2 with lambda = 0 (the same steps, G optimizer, schedule and data without the
#            adversarial term: "phase 1 continued for the same number of steps without D").
# Idempotent: a finished run (weights.pt present) is skipped, an interrupted one resumes.
# Usage: scripts/seg_experiments.sh [GENERATOR...]   (default: fcn8s_vgg16 deeplab_r50)
# Environment: SEEDS (default "1 2 3"), PHASE1 (a finished phase-1 weights file that every seed's
# phase 2 starts from, instead of one phase-1 run per seed: e.g. the shipped generator's run),
# PROFILE (default camvid_cpu: half resolution, 3k + 3k
# steps; camvid_small: 1/3 resolution, about 3 hours on 2 cores, one thread per run, so run one
# generator per process side by side; camvid = full 360x480 paper schedule for a GPU;
# camvid_ssgan: swiftnet_r18's phase 2, with PHASE1), OUT (default runs/seg_exp), EXTRA (more
# --set args).
# SwiftNet-R18: PROFILE=camvid_ssgan PHASE1=runs/seg_swift/enet_s1/weights.pt OUT=runs/seg_p2 \
#               scripts/seg_experiments.sh swiftnet_r18
# FCN-8s / DeepLab (1/3 resolution):
#               PROFILE=camvid_small OUT=runs/seg_small scripts/seg_experiments.sh fcn8s_vgg16 &
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
    # a generator's own profile file, else the profile itself (written for the default FCN-8s)
    cfg=(--config "configs/seg/${gen}_${PROFILE}.yaml")
    [ -f "configs/seg/${gen}_${PROFILE}.yaml" ] ||
      cfg=(--config "configs/seg/${PROFILE}.yaml" --set model.name="$gen")
    for s in $SEEDS; do
      base="$OUT/${gen}_s$s"
      p1=${PHASE1:-$base/phase1/weights.pt}
      if [ -z "${PHASE1:-}" ]; then
        run "$base/phase1" "${cfg[@]}" --set engine.seed="$s" --set train.phase2_epochs=0
      fi
      p2=("${cfg[@]}" --set engine.seed="$s" --set train.phase1_epochs=0
          --set train.init_from="$p1")
      run "$base/ssgan" "${p2[@]}"
      run "$base/control" "${p2[@]}" --set train.adversarial.lam=0 \
        --set train.adversarial.guard=false
    done
  done
done
