#!/usr/bin/env bash
# The device checks of docs/cost.md on a machine with a CUDA GPU, in under 10 minutes:
#   1. the tests marked `device` (tests/test_sync_free.py: no host-device synchronisation per
#      sampling step; tests/test_devices_precision.py: fp32/bf16/fp16 on CUDA);
#   2. `mgdm bench cost` on the GPU at batch 1 and 4, two full outer steps timed (no caps on
#      MGDM's Adam steps or chain), in fp32 and in bf16 (fp16 where bf16 is not supported).
# Results go to $OUT (default: gpu_check_out/): device_tests.txt, cost_<precision>.md/.json.
#
# Usage (from the repository root): scripts/gpu_check.sh
#   PYTHON=/path/to/python  a Python whose torch has CUDA (default: .venv/bin/python if present,
#                           else python3); the package is imported from src/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)

"$PYTHON" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA GPU; run this on a GPU machine.")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
      f"bf16 supported: {torch.cuda.is_bf16_supported()}")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== device-marked tests"
timeout 240 "$PYTHON" -m pytest -q -p no:xdist -p no:cacheprovider -m device -rs \
  tests/test_sync_free.py tests/test_devices_precision.py 2>&1 | tee "$OUT/device_tests.txt" || true

low=$("$PYTHON" -c "import torch; print('bf16' if torch.cuda.is_bf16_supported() else 'fp16')")
for precision in fp32 "$low"; do
  echo "== mgdm bench cost --precision $precision"
  timeout 150 "$PYTHON" -m mgdm bench cost --device cuda --precision "$precision" \
    --batch 1 4 --steps 2 --json "$OUT/cost_$precision.json" | tee "$OUT/cost_$precision.md" || true
done
echo "gpu_check: done in $(( $(date +%s) - start )) s; results in $OUT/"
