#!/usr/bin/env bash
# The GPU kit (scripts/gpu_kit.py; bench/README.md says how to use it):
#   scripts/gpu_kit.sh pack DIR                     where apt works: what a bare GPU machine lacks, into DIR
#   DIR/src/scripts/gpu_kit.sh run DIR OUT [--budget 480] [--no-gpu]
#                                                   on the GPU machine: build, test, benchmark; OUT/report.md
set -euo pipefail
python="${PYTHON:-$(command -v python3 || command -v python)}"
exec "$python" "$(dirname "${BASH_SOURCE[0]}")/gpu_kit.py" "$@"
