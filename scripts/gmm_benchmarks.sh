#!/usr/bin/env bash
# Regenerates the JSON behind every Gaussian-mixture table of docs/benchmarks.md.
# Each run writes docs/results/gmm/NAME.json; a run whose file exists is skipped, so the script
# resumes after an interruption (a run in flight restarts from its beginning).
# Usage: scripts/gmm_benchmarks.sh [NAME ...]   (no names: every run, in the order below)
set -euo pipefail
cd "$(dirname "$0")/.."
MGDM=${MGDM:-.venv/bin/mgdm}
OUT=${OUT:-docs/results/gmm}
mkdir -p "$OUT"

# Runs made while MGDM's default preset was today's `variational` (until 2026-12-05) pin that
# preset and keep the label they were written with; rto-* and default-2026-12-05 are the
# `default` preset of 2026-12-05 and name it, since `mgdm bench gmm` without --preset now runs
# the gmm domain's own preset (`gmm`: the default with R = 2; the gmm-preset run).
declare -A RUNS=(
  [defaults-d8-d80]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers all --preset variational --mgdm-label mgdm"
  [reference-d8-d80]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --preset reference"
  [sweeps-R1]="--dim 80 --obs-dim 2 --seeds 0-9 --samplers mgdm -R 1 --mgdm-label mgdm-R1 --preset variational"
  [sweeps-R2]="--dim 80 --obs-dim 2 --seeds 0-9 --samplers mgdm -R 2 --mgdm-label mgdm-R2 --preset variational"
  [sweeps-R4]="--dim 80 --obs-dim 2 --seeds 0-9 --samplers mgdm -R 4 --mgdm-label mgdm-R4 --preset variational"
  [budget1000-d8-d80]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm,pnpdm --budget 1000 --preset variational --mgdm-label mgdm"
  [budget508-d8]="--dim 8 --obs-dim 1 2 4 --seeds 0-9 --samplers all --budget 508 --preset variational --mgdm-label mgdm"
  [defaults-d800-s0]="--dim 800 --obs-dim 1 2 4 --seeds 0 --samplers all --preset variational --mgdm-label mgdm"
  [defaults-d800-s1]="--dim 800 --obs-dim 1 2 4 --seeds 1 --samplers all --preset variational --mgdm-label mgdm"
  [reference-d800]="--dim 800 --obs-dim 1 2 4 --seeds 0-1 --samplers mgdm --preset reference"
  # Ablations of the default preset (d = 8, seeds 0-5): one option changed at a time.
  [ablation-lr0.3]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --lr 0.3 --mgdm-label lr=0.3s --preset variational"
  [ablation-lr2]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --lr 2 --mgdm-label lr=2s --preset variational"
  [ablation-closed-form]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --kl closed-form --mgdm-label closed-form-KL --preset variational"
  [ablation-G10]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm -G 10 --mgdm-label G=10 --preset variational"
  [ablation-R4]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm -R 4 --mgdm-label R=4 --preset variational"
  [ablation-M20]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm -M 20 --mgdm-label M=20 --preset variational"
  [ablation-mix]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --index-rule mix --per-sample-index yes --mgdm-label mix-per-sample --preset variational"
  [ablation-cc]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --likelihood covariance-corrected --mgdm-label covariance-corrected --preset variational"
  [ablation-cc-R4]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --likelihood covariance-corrected -R 4 --mgdm-label covariance-corrected-R=4 --preset variational"
  [candidate-K300-G1]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm -K 300 -G 1,-10:=20 --mgdm-label K=300,G=1 --preset variational"
  [candidate-K300-G1-d800]="--dim 800 --obs-dim 1 2 4 --seeds 0-1 --samplers mgdm -K 300 -G 1,-10:=20 --mgdm-label K=300,G=1 --preset variational"
  [ablation-cc-d800]="--dim 800 --obs-dim 1 2 4 --seeds 0-1 --samplers mgdm --likelihood covariance-corrected --mgdm-label covariance-corrected --preset variational"
  # The candidate the ladder points to (docs/benchmarks.md §1.6): the covariance-corrected
  # potential with R = 4 sweeps, rescaled to 1000 calls per sample (table 1.2's budget).
  [candidate-cc-R4-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --likelihood covariance-corrected -R 4 --budget 1000 --mgdm-label cc-R4 --preset variational"
  # The issue's d = 800 goal at 1000 calls (MGDM rescaled; DPS at its own 998).
  [budget1000-d800]="--dim 800 --obs-dim 1 2 4 --seeds 0-1 --samplers mgdm,dps --budget 1000 --preset variational --mgdm-label mgdm"
  # MGDM drawing x_ell by randomize-then-optimise (the default since 2026-12-05), rescaled to
  # 1000 calls, to compare with budget1000-d8-d80 and budget1000-d800 (the variational fit).
  # The same draw with the variational preset's G schedule (3 line steps, 20 in the last 10).
  [variational-rto-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --preset variational --fit rto --budget 1000 --mgdm-label variational-rto"
  # The default preset of 2026-12-05 (randomize-then-optimise, K = 172) at its own 508 calls.
  [default-2026-12-05]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --mgdm-label rto-508 --preset default"
  [rto-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --fit rto --budget 1000 --mgdm-label rto --preset default"
  [rto-budget1000-d800]="--dim 800 --obs-dim 1 2 4 --seeds 0-1 --samplers mgdm --fit rto --budget 1000 --mgdm-label rto --preset default"
  # Variants of the default's rto draw tried on 2026-12-05 (none kept), rescaled to 1000 calls as
  # rto-budget1000: the initialisation of x_t with eta = 0.5, the index rules mix-det, mix and
  # midpoint (smaller ell in the first 40 % of the steps), and the last-step correction.
  [rto-eta0.5-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 --eta 0.5 --mgdm-label rto-eta0.5 --preset default"
  [rto-mix-det-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 --index-rule mix-det --mgdm-label rto-mix-det --preset default"
  [rto-mix-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 --index-rule mix --mgdm-label rto-mix --preset default"
  [rto-midpoint-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 --index-rule midpoint --mgdm-label rto-midpoint --preset default"
  [rto-lsc-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 --last-step-correction yes --mgdm-label rto-lsc --preset default"
  # The default with R = 2 and R = 4 Gibbs sweeps at 1000 calls (K = 169 and 86), and with R = 1
  # and R = 4 at 2000 calls (K = 669 and 169); R = 1 and 2 at 200 and 500 calls.
  [rto-R2-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 -R 2 --mgdm-label rto-R2 --preset default"
  [rto-R4-budget1000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 1000 -R 4 --mgdm-label rto-R4 --preset default"
  [rto-budget2000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 2000 --mgdm-label rto --preset default"
  [rto-R4-budget2000]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 2000 -R 4 --mgdm-label rto-R4 --preset default"
  [rto-budget200]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 200 --mgdm-label rto --preset default"
  [rto-R2-budget200]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 200 -R 2 --mgdm-label rto-R2 --preset default"
  [rto-budget500]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 500 --mgdm-label rto --preset default"
  [rto-R2-budget500]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --budget 500 -R 2 --mgdm-label rto-R2 --preset default"
  [rto-R2-budget1000-d800]="--dim 800 --obs-dim 1 2 4 --seeds 0-1 --samplers mgdm --budget 1000 -R 2 --mgdm-label rto-R2 --preset default"
  # The gmm domain's preset (since 2026-12-05: the default with R = 2, K = 87) at its own 505
  # calls; at 1000 calls it is rto-R2-budget1000's configuration (with_budget gives K = 169).
  [gmm-preset]="--dim 8 80 --obs-dim 1 2 4 --seeds 0-9 --samplers mgdm --preset gmm --mgdm-label gmm-505"
  [ablation-mix-R4]="--dim 8 --obs-dim 1 2 4 --seeds 0-5 --samplers mgdm --index-rule mix --per-sample-index yes -R 4 --mgdm-label mix-per-sample-R=4 --preset variational"
)
# Three streams that together cover every run (to use several cores, run
# `scripts/gmm_benchmarks.sh NAMES...` with the names of one stream in each of several shells).
STREAM_A=(defaults-d8-d80 defaults-d800-s0)
STREAM_B=(reference-d8-d80 sweeps-R1 sweeps-R2 sweeps-R4 budget1000-d8-d80 budget508-d8 reference-d800 defaults-d800-s1)
STREAM_C=(ablation-lr0.3 ablation-lr2 ablation-closed-form ablation-G10 ablation-M20 ablation-mix ablation-R4 ablation-mix-R4 ablation-cc ablation-cc-R4 candidate-K300-G1 candidate-K300-G1-d800 ablation-cc-d800 candidate-cc-R4-budget1000
  budget1000-d800 rto-budget1000 rto-budget1000-d800 default-2026-12-05 variational-rto-budget1000
  rto-eta0.5-budget1000 rto-mix-det-budget1000 rto-mix-budget1000 rto-midpoint-budget1000 rto-lsc-budget1000
  rto-R2-budget1000 rto-R4-budget1000 rto-R2-budget1000-d800 rto-budget2000 rto-R4-budget2000
  rto-budget200 rto-R2-budget200 rto-budget500 rto-R2-budget500 gmm-preset)
ORDER=("${STREAM_A[@]}" "${STREAM_B[@]}" "${STREAM_C[@]}")
if [ $# -gt 0 ]; then ORDER=("$@"); fi

for name in "${ORDER[@]}"; do
  args=${RUNS[$name]:?"unknown run $name; known: ${!RUNS[*]}"}
  if [ -f "$OUT/$name.json" ]; then echo "skip $name (done)"; continue; fi
  echo "run $name: mgdm bench gmm $args"
  # shellcheck disable=SC2086
  "$MGDM" bench gmm $args --quiet --json "$OUT/$name.partial.json" > "$OUT/$name.md"
  mv "$OUT/$name.partial.json" "$OUT/$name.json"
done
