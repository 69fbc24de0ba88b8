#!/usr/bin/env bash
# Regenerates the SQLite databases behind the image tables of docs/benchmarks.md.
# Each run writes docs/results/images/NAME.sqlite; a run resumes where it stopped (finished cells
# are skipped), so rerunning after an interruption only computes what is missing.
# Usage: scripts/image_benchmarks.sh [NAME ...]   (no names: every run, in the order below)
# PROCS=2 runs each under torchrun with two processes (same results as one process).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/results/images}
PROCS=${PROCS:-1}
mkdir -p "$OUT"

# Runs made while MGDM's default preset was today's `variational` (until 2026-12-05) pin that
# preset under the label they were written with (--mgdm-preset variational --mgdm-label mgdm),
# so that they resume and reproduce; the runs named *-rto are the default of 2026-12-05.
declare -A RUNS=(
  # Exact posterior: the kernel-density prior (1000 training images, bandwidth 0.1), linear tasks
  # with an SVD, 32 samples per cell scored against exact posterior samples.
  [kde-exact]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers all --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # Compute curve on the exact posterior: MGDM (default preset) and DPS rescaled to 500, 1000 and
  # 2000 calls per sample on two kernel-density tasks; at 200 calls, MGDM under the budget rule
  # of 2026-12 (kde-exact's MGDM row is the rule before it; DPS at 200: kde-exact).
  [kde-nfe200]="--prior fashion-mnist-kde --tasks sr4,box_inpainting --samplers mgdm --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  [kde-nfe500]="--prior fashion-mnist-kde --tasks sr4,box_inpainting --samplers mgdm,dps --images 8 --seeds 0 --budget 500 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  [kde-nfe1000]="--prior fashion-mnist-kde --tasks sr4,box_inpainting --samplers mgdm,dps --images 8 --seeds 0 --budget 1000 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  [kde-nfe2000]="--prior fashion-mnist-kde --tasks sr4,box_inpainting --samplers mgdm,dps --images 8 --seeds 0 --budget 2000 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # The shipped DDPM: the ten tasks x the eight samplers at an equal budget of 200 calls.
  [main]="--prior fashion-mnist --tasks all --samplers all --images 16 --seeds 0 --budget 200 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # Compute curve: MGDM's fast preset with R = 1, 2, 4, 6 Gibbs sweeps, beside three baselines
  # at their own (Reference) settings.
  # The shipped latent prior: the ten tasks x the latent-capable samplers at 200 calls.
  [latent]="--prior fashion-mnist-latent --tasks all --samplers all --images 8 --seeds 0 --budget 200 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # The same two tables with MGDM's budget rule of 2026-12 (two Adam steps per outer step below
  # half its own cost): each database starts as a copy of main/latent without the MGDM cells
  # (scripts/image_benchmarks.sh copies it when missing), and only MGDM runs again.
  [main-2026-12]="--prior fashion-mnist --tasks all --samplers all --images 16 --seeds 0 --budget 200 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # Every sampler at 1000 calls on the ten tasks, 8 images (the issue's 1000-call table; MGDM and
  # DPS ran first, the other six later into the same database).
  [main-nfe1000]="--prior fashion-mnist --tasks all --samplers all --images 8 --seeds 0 --budget 1000 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  [latent-2026-12]="--prior fashion-mnist-latent --tasks all --samplers all --images 8 --seeds 0 --budget 200 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # The exact-posterior table under MGDM's budget rule of 2026-12 (a copy of kde-exact without the
  # MGDM cells; only MGDM runs again), and the same table at 1000 calls for every sampler
  # (starts as a copy of kde-nfe1000, whose MGDM and DPS cells on sr4 and box inpainting it reuses).
  [kde-exact-2026-12]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers all --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  [kde-exact-nfe1000]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers all --images 8 --seeds 0 --budget 1000 --samples-per-cell 32 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # MGDM with the covariance-corrected potential (sigma_y^2 I + (1 - abar_ell) A A^T) at 200 calls
  # on the four tasks with an SVD (the others cannot run it), to compare with main-2026-12's MGDM.
  [main-cc]="--prior fashion-mnist --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-likelihood covariance-corrected --images 16 --seeds 0 --budget 200 --batch 8 --mgdm-preset variational --mgdm-label mgdm"
  # MGDM drawing x_ell by randomize-then-optimise (--mgdm-fit rto, Gauss-Newton line steps instead
  # of Adam) at 200 calls, to compare with main-2026-12, latent-2026-12 and kde-exact-2026-12.
  [main-rto]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-fit rto --images 16 --seeds 0 --budget 200 --batch 8"
  [kde-rto]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-fit rto --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  [latent-rto]="--prior fashion-mnist-latent --tasks all --samplers mgdm --mgdm-fit rto --images 8 --seeds 0 --budget 200 --batch 8"
  # The same with the variational preset's G schedule (3 line steps, 20 in the last 10, K = 223
  # at 1000 calls) instead of the default's two per grid point.
  [kde-variational-rto-nfe1000]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-preset variational --mgdm-fit rto --images 8 --seeds 0 --budget 1000 --samples-per-cell 32 --batch 8"
  # The compute curve of the default of 2026-12-05 on the two tasks of kde-nfe*: 200 and 1000
  # calls are kde-rto and kde-rto-nfe1000.
  [kde-rto-nfe500]="--prior fashion-mnist-kde --tasks sr4,box_inpainting --samplers mgdm --mgdm-fit rto --images 8 --seeds 0 --budget 500 --samples-per-cell 32 --batch 8"
  [kde-rto-nfe2000]="--prior fashion-mnist-kde --tasks sr4,box_inpainting --samplers mgdm --mgdm-fit rto --images 8 --seeds 0 --budget 2000 --samples-per-cell 32 --batch 8"
  # The default of 2026-12-05 at 1000 calls on the ten tasks (the cells of main-nfe1000).
  [main-rto-nfe1000]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-fit rto --images 8 --seeds 0 --budget 1000 --batch 8"
  [kde-rto-nfe1000]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-fit rto --images 8 --seeds 0 --budget 1000 --samples-per-cell 32 --batch 8"
  # The fast preset until 2026-12-05 (the variational fit, K = 50, G = 2, 10 in the last 5),
  # pinned field by field.
  [curve]="--prior fashion-mnist --tasks sr4,box_inpainting --samplers dps,ddnm,reddiff --mgdm-preset fast --mgdm-set fit=variational --mgdm-set num_steps=50 --mgdm-set gradient_steps=2,-5:=10 --mgdm-sweeps 1,2,4,6 --images 8 --seeds 0 --batch 8"
  # The fast preset (the demo's) on the ten tasks at its own cost: until 2026-12-05 (pinned as
  # in curve, 158 calls) and since (the default's rto draw on K = 55 grid points, 157 calls).
  [fast-variational]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-preset fast --mgdm-set fit=variational --mgdm-set num_steps=50 --mgdm-set gradient_steps=2,-5:=10 --mgdm-label mgdm-fast-variational --images 16 --seeds 0 --batch 8"
  [fast-2026-12-05]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-preset fast --images 16 --seeds 0 --batch 8"
  # Variants of the default's rto draw tried on 2026-12-05 (none kept), at 200 calls: the
  # initialisation of x_t with eta = 0.5, the mix-det index rule (ell = 0.75 p in the first 40 %
  # of the steps), the last-step correction, and one corrected line step on K = 102 points.
  [kde-rto-eta05]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-set eta=0.5 --mgdm-label mgdm-rto-eta0.5 --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  [kde-rto-mixdet]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-set index_rule=mix-det --mgdm-label mgdm-rto-mix-det --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  [kde-rto-lsc]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-set last_step_correction=yes --mgdm-label mgdm-rto-lsc --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  [kde-rto-g1lsc]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-set last_step_correction=yes --mgdm-set gradient_steps=1 --mgdm-set num_steps=102 --mgdm-label mgdm-rto-g1-lsc --images 8 --seeds 0 --samples-per-cell 32 --batch 8"
  [main-rto-eta05]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-set eta=0.5 --mgdm-label mgdm-rto-eta0.5 --images 16 --seeds 0 --budget 200 --batch 8"
  # MGDM (the default of 2026-12-05) and DPS at 200 calls on 32 images (the first 8 are the cells
  # of kde-rto and kde-exact-2026-12, copied in before the run): the same comparison with four
  # times the images.
  # The ladder's "exact potential" rung (docs/benchmarks.md §1.6) on the kernel-density posterior:
  # the variational preset with the true g_ell (an oracle), at 200 and 1000 calls.
  [kde-oracle-potential]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-preset variational --mgdm-set likelihood=exact --mgdm-label mgdm-exact-potential --images 8 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  [kde-rto-32]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-fit rto --images 32 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  [kde-dps-32]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers dps --images 32 --seeds 0 --budget 200 --samples-per-cell 32 --batch 8"
  # The default with R = 2 Gibbs sweeps at 1000 calls (K = 169), beside kde-rto-nfe1000 and
  # main-rto-nfe1000 (R = 1, K = 336), whose cells they start from (copied in before the run).
  [kde-rto-R2-nfe1000]="--prior fashion-mnist-kde --tasks sr4,sr16,box_inpainting,half_mask --samplers mgdm --mgdm-fit rto --mgdm-sweeps 2 --images 8 --seeds 0 --budget 1000 --samples-per-cell 32 --batch 8"
  [main-rto-R2-nfe1000]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-fit rto --mgdm-sweeps 2 --images 8 --seeds 0 --budget 1000 --batch 8"
  [main-rto-lsc]="--prior fashion-mnist --tasks all --samplers mgdm --mgdm-set last_step_correction=yes --mgdm-label mgdm-rto-lsc --images 16 --seeds 0 --budget 200 --batch 8"
  [latent-rto-lsc]="--prior fashion-mnist-latent --tasks all --samplers mgdm --mgdm-set last_step_correction=yes --mgdm-label mgdm-rto-lsc --images 8 --seeds 0 --budget 200 --batch 8"
)
ORDER=(kde-exact kde-nfe200 kde-nfe500 kde-nfe1000 kde-nfe2000 main curve latent main-2026-12 latent-2026-12 main-nfe1000
  kde-exact-2026-12 kde-exact-nfe1000 main-cc main-rto kde-rto latent-rto kde-rto-nfe1000 kde-variational-rto-nfe1000
  kde-rto-nfe500 kde-rto-nfe2000 main-rto-nfe1000 fast-variational fast-2026-12-05 kde-rto-eta05
  kde-rto-mixdet kde-rto-lsc kde-rto-g1lsc main-rto-lsc latent-rto-lsc main-rto-eta05 kde-rto-32 kde-dps-32
  kde-rto-R2-nfe1000 main-rto-R2-nfe1000 kde-oracle-potential)

for name in "${@:-${ORDER[@]}}"; do
  if [[ -z "${RUNS[$name]+x}" ]]; then
    echo "unknown run $name; known: ${ORDER[*]}" >&2
    exit 2
  fi
  echo "== $name"
  if [[ "$name" == *-2026-12 && ! -f "$OUT/$name.sqlite" ]]; then
    cp "$OUT/${name%-2026-12}.sqlite" "$OUT/$name.sqlite"
    sqlite3 "$OUT/$name.sqlite" "DELETE FROM cells WHERE sampler = 'mgdm'" 2>/dev/null ||
      .venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM cells WHERE sampler = 'mgdm'\"); c.commit()" "$OUT/$name.sqlite"
  fi
  if [[ "$name" == kde-exact-nfe1000 && ! -f "$OUT/$name.sqlite" ]]; then
    cp "$OUT/kde-nfe1000.sqlite" "$OUT/$name.sqlite"
  fi
  if [[ "$name" == kde-rto-R2-nfe1000 && ! -f "$OUT/$name.sqlite" ]]; then
    cp "$OUT/kde-rto-nfe1000.sqlite" "$OUT/$name.sqlite"
  fi
  if [[ "$name" == main-rto-R2-nfe1000 && ! -f "$OUT/$name.sqlite" ]]; then
    cp "$OUT/main-rto-nfe1000.sqlite" "$OUT/$name.sqlite"
  fi
  if [[ "$name" == kde-rto-32 && ! -f "$OUT/$name.sqlite" ]]; then
    cp "$OUT/kde-rto.sqlite" "$OUT/$name.sqlite"
  fi
  if [[ "$name" == kde-dps-32 && ! -f "$OUT/$name.sqlite" ]]; then
    cp "$OUT/kde-exact-2026-12.sqlite" "$OUT/$name.sqlite"
    .venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM cells WHERE sampler != 'dps'\"); c.commit()" "$OUT/$name.sqlite"
  fi
  if [[ "$PROCS" -gt 1 ]]; then
    .venv/bin/torchrun --nproc-per-node "$PROCS" -m mgdm.cli bench images ${RUNS[$name]} --db "$OUT/$name.sqlite"
  else
    .venv/bin/mgdm bench images ${RUNS[$name]} --db "$OUT/$name.sqlite"
  fi
done
