#!/usr/bin/env bash
# Formats the project's C++ and CUDA sources with the repo's .clang-format (clang-format 14, as Debian 12
# ships it; another version formats some constructs differently).
#   scripts/format.sh           rewrites every file that differs
#   scripts/format.sh --check   lists the files that differ and fails when there are any (CI)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
format="$(command -v clang-format-14 || command -v clang-format || true)"
if [[ -z "$format" ]]; then
  echo "format.sh: clang-format (14) is not installed: apt-get install clang-format-14" >&2
  exit 1
fi
mapfile -t files < <(git ls-files -- '*.cpp' '*.h' '*.cu' '*.cuh' ':!:third_party/*')
if [[ "${1:-}" == --check ]]; then
  # Each file against its formatted text (not --dry-run, which clang-format 14 gets wrong on some
  # namespace comments), one process per file, as many at once as there are CPUs.
  mapfile -t differ < <(printf '%s\0' "${files[@]}" |
                          xargs -0 -P "$(nproc)" -n 1 sh -c '"$0" --style=file "$1" | cmp -s - "$1" || echo "$1"' "$format" |
                          sort)
  if ((${#differ[@]})); then
    echo "format.sh: ${#differ[@]} of ${#files[@]} files differ from .clang-format (run scripts/format.sh):" >&2
    printf '  %s\n' "${differ[@]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files follow .clang-format"
else
  "$format" --style=file -i "${files[@]}"
fi
