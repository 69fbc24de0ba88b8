#!/usr/bin/env bash
# Every step behind the shipped audio priors and the audio table of docs/benchmarks.md, in order.
# Each step resumes: data files are rewritten only when missing, training runs resume from their
# checkpoints, and the benchmark skips the finished rows of its SQLite database.
# Usage: scripts/audio_benchmarks.sh [STEP ...]   (no steps: all of them, in the order below)
#   data         8000 training and 64 test examples of `mgdm audio-data` into $DATA
#   train-joint  the four-stem prior (one network, the stems jointly)
#   train-independent  four single-stem priors (ISDM-style), a quarter of the joint prior's
#                FLOPs each, so one call of the four costs about one call of the joint prior
#   export-joint, export-independent
#                copy the priors into src/mgdm/assets/ (what `mgdm separate` loads)
#   evaluate-joint, evaluate-independent
#                held-out loss, spectra and model cards of the shipped priors
#   bench        `mgdm bench audio` on 20 test mixtures: MGDM R = 1, 2, 4, 6, the baselines,
#                MSDM's Dirac separator, MGDM on the independent priors ($PROCS processes:
#                1 or 2)
#   bench-default  MGDM's audio preset (R = 2) on the independent priors: `mgdm separate`'s
#                defaults, into docs/results/audio/independent-R2.sqlite
#   bench-cc     (not in the default order) MGDM R = 2 on the joint prior with the covariance-corrected
#                potential, into docs/results/audio/joint-cc-R2.sqlite
#   bench-preset (not in the default order) MGDM's variational preset (the image and mixture default
#                until 2026-12-05)
#                on audio: at the audio preset's 817 calls and PGDM's 999 on the joint prior, at 817
#                on the independent priors, each into its own database
#   bench-rto    (not in the default order) MGDM R = 2 on the joint prior drawing x_ell by
#                randomize-then-optimise (--mgdm-fit rto), into docs/results/audio/joint-rto-R2.sqlite,
#                and on the independent priors, into independent-rto-R2.sqlite
#   table        docs/results/audio/table.md and compute_curve.png
#   bench-more   (not in the default order) DiffPIR, RED-diff, DAPS and PnP-DM on the same mixtures
# DATA (default runs/audio-data) holds the generated data (2.2 GB, not in git).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/audio-data}
PROCS=${PROCS:-1}
RESULTS=docs/results/audio
ASSETS=src/mgdm/assets
HARDWARE=${HARDWARE:-"the 2-core AMD EPYC CPU build VM (no GPU), torch 2.13.0+cpu, one torch thread, beside one other training job"}
export OMP_NUM_THREADS=1
MGDM=.venv/bin/mgdm
STEPS=1500
TRAIN="--steps $STEPS --lr 4e-4 --batch-size 16 --factors 8,4,4 --checkpoint-every 250"
JOINT_CHANNELS=8,32,64,128
SINGLE_CHANNELS=4,16,32,64

step_data() {
  [[ -f $DATA/train.safetensors ]] || $MGDM audio-data --out "$DATA" --split train --count 8000 --no-wav
  [[ -f $DATA/test.safetensors ]] || $MGDM audio-data --out "$DATA" --split test --count 64
}
joint_command() {
  echo "mgdm train audio-prior --data $DATA/train.safetensors --out runs/audio-4stem --channels $JOINT_CHANNELS $TRAIN"
}
single_command() {
  echo "mgdm train audio-prior --data $DATA/train.safetensors --out runs/audio-independent/$1 --stems $1 --channels $SINGLE_CHANNELS $TRAIN"
}
step_train_joint() { .venv/bin/$(joint_command); }
step_train_independent() {
  for stem in bass drums guitar piano; do .venv/bin/$(single_command "$stem"); done
}
step_export_joint() {
  mkdir -p "$ASSETS/audio-4stem-prior"
  cp runs/audio-4stem/{prior.json,model.safetensors} "$ASSETS/audio-4stem-prior/"
}
step_export_independent() {
  for stem in bass drums guitar piano; do
    mkdir -p "$ASSETS/audio-independent-priors/$stem"
    cp runs/audio-independent/$stem/{prior.json,model.safetensors} "$ASSETS/audio-independent-priors/$stem/"
  done
}
step_evaluate_joint() {
  $MGDM evaluate audio-prior --prior "$ASSETS/audio-4stem-prior" --run runs/audio-4stem \
    --data "$DATA/test.safetensors" --command "$(joint_command)" --training-hardware "$HARDWARE"
}
step_evaluate_independent() {
  $MGDM evaluate audio-prior --prior "$ASSETS/audio-independent-priors" --run runs/audio-independent \
    --data "$DATA/test.safetensors" --command "$(single_command STEM) (STEM = bass, drums, guitar, piano)" \
    --training-hardware "$HARDWARE"
}
bench() {  # bench ARGS...: one `mgdm bench audio` run into the shared database
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" --data "$DATA/test.safetensors" \
    --mixtures 20 --batch 4 --db "$RESULTS/main.sqlite" "$@"
}
# The benchmark in parts; any split of them over processes gives the same rows (the seeds do not
# depend on it), and --only keeps the independent-prior part from redoing mgdm-R6.
bench_sweeps() { bench --samplers mgdm --mgdm-sweeps 6,4,2,1 "$@"; }
bench_independent() {
  bench --samplers mgdm --mgdm-sweeps 6 --independent-prior "$ASSETS/audio-independent-priors" \
    --only mgdm-independent "$@"
}
step_bench() {
  mkdir -p "$RESULTS"
  if [[ "$PROCS" -gt 1 ]]; then
    (bench_independent --quiet && bench --samplers ddnm,pgdm --quiet) & other=$!
    bench_sweeps && bench --samplers dps,msdm --quiet
    wait "$other"
  else
    bench_sweeps && bench --samplers dps,pgdm,ddnm,msdm && bench_independent
  fi
}
# `mgdm separate`'s defaults (MGDM's audio preset, R = 2, on the independent priors) in their own
# database, with MSDM's separator as a check that the regenerated data are the same clips.
step_bench_default() {
  local db="$RESULTS/independent-R2.sqlite"
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" --data "$DATA/test.safetensors" \
    --mixtures 20 --batch 4 --db "$db" --samplers msdm
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" --data "$DATA/test.safetensors" \
    --mixtures 20 --batch 4 --db "$db" --samplers mgdm --mgdm-sweeps 2 \
    --independent-prior "$ASSETS/audio-independent-priors" --only mgdm-independent
}
# MGDM's covariance-corrected potential (N(y; A D_ell(x), sigma_y^2 I + (1 - abar_ell) A A^T)) with
# R = 2 on the joint prior, in its own database.
step_bench_cc() {
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" --data "$DATA/test.safetensors" \
    --mixtures 20 --batch 4 --db "$RESULTS/joint-cc-R2.sqlite" --samplers mgdm --mgdm-sweeps 2 \
    --mgdm-likelihood covariance-corrected
}
# MGDM's variational preset (the image and mixture default until 2026-12-05: one Adam step size
# per bridge std, M = 1, ell = the next grid time) on audio.
step_bench_preset() {
  local common=(--data "$DATA/test.safetensors" --mixtures 20 --batch 4 --samplers mgdm
    --mgdm-preset variational --mgdm-sweeps 1)
  for budget in 817 999; do
    $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" "${common[@]}" --budget "$budget" \
      --db "$RESULTS/joint-variational-$budget.sqlite"
  done
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" "${common[@]}" --budget 817 \
    --independent-prior "$ASSETS/audio-independent-priors" --only mgdm-independent-variational \
    --db "$RESULTS/independent-variational-817.sqlite"
}
# MGDM's audio preset (R = 2) drawing x_ell by randomize-then-optimise (Gauss-Newton line steps
# instead of Adam) on the joint prior, in its own database.
step_bench_rto() {
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" --data "$DATA/test.safetensors" \
    --mixtures 20 --batch 4 --db "$RESULTS/joint-rto-R2.sqlite" --samplers mgdm --mgdm-sweeps 2 \
    --mgdm-fit rto
  $MGDM bench audio --prior "$ASSETS/audio-4stem-prior" --data "$DATA/test.safetensors" \
    --mixtures 20 --batch 4 --db "$RESULTS/independent-rto-R2.sqlite" --samplers mgdm \
    --mgdm-sweeps 2 --mgdm-fit rto --independent-prior "$ASSETS/audio-independent-priors" \
    --only mgdm-independent-rto
}
# Not behind docs/benchmarks.md (the CPU time of this task did not allow it): the other baselines.
step_bench_more() { bench --samplers diffpir,reddiff,daps,pnpdm; }
step_table() { $MGDM bench audio-table --db "$RESULTS/main.sqlite" --out "$RESULTS"; }

ORDER=(data train-joint train-independent export-joint export-independent evaluate-joint
  evaluate-independent bench bench-default table)
for name in "${@:-${ORDER[@]}}"; do
  case "$name" in
    data | train-joint | train-independent | export-joint | export-independent) ;;
    evaluate-joint | evaluate-independent | bench | bench-default | bench-more | bench-cc | bench-preset | bench-rto | table) ;;
    *) echo "unknown step $name; known: ${ORDER[*]}" >&2; exit 2 ;;
  esac
  echo "== $name"
  "step_${name//-/_}"
done
