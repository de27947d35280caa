#!/usr/bin/env bash
# The GPU check, for the day a machine with CUDA GPUs is at hand: `pytest -m gpu`, a training step at the study's
# real sizes (ViT-B/16 at 384 px + BERT-base shapes) plain and through GPipe, and the cover loader beside the GPU,
# all in one Markdown report. Finishes within 8 minutes on one GPU (each part has its own time limit).
#
#   benchmarks/gpu_check.sh [REPORT.md]             on a GPU machine (default report: gpu_check_report.md)
#   benchmarks/gpu_check.sh --dry-run [REPORT.md]   the same code on the CPU with tiny sizes (checks the script)
#
# Paste the report into benchmarks/README.md.
set -euo pipefail

dry=""
if [[ "${1:-}" == "--dry-run" ]]; then
  dry="--dry-run"
  shift
fi
report="$(realpath -m "${1:-gpu_check_report.md}")"
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"

if [[ -z "$dry" ]] && ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA GPU is visible to torch; run with --dry-run to check the script on the CPU" >&2
  exit 1
fi

started=$(date +%s)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# 1. the GPU tests (on the CPU they all skip): at most 3 minutes
set +e
timeout 180 "$python" -m pytest -m gpu -q -p no:cacheprovider tests >"$log" 2>&1
status=$?
set -e
summary="$(grep -E '(passed|failed|skipped|deselected|error)' "$log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')"
if [[ $status -eq 124 ]]; then
  summary="TIMED OUT after 180 s; ${summary}"
elif [[ $status -ne 0 && $status -ne 5 ]]; then
  summary="FAILED (exit $status): ${summary}"
  tail -n 40 "$log" >&2
fi
echo "pytest -m gpu: ${summary}" >&2

# 2. the training step and the loader: at most 4 minutes
timeout 240 "$python" benchmarks/gpu_check.py $dry --out "$report" --pytest-summary "${summary:-no output}"

echo "gpu_check: wrote $report in $(( $(date +%s) - started )) s" >&2
