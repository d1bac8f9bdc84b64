#!/usr/bin/env bash
# Runs every benchmark built in the given build directory (default build-bench).
# Each program prints its figures and the ratio to a reference measured in the
# same run, since this machine is shared and noisy (bench/README.md).
set -euo pipefail
dir=${1:-build-bench}
cd "$(dirname "$0")/.."
echo "swoop benchmarks: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(uname -r)"
for exe in "$dir"/bench/*; do
    [[ -x "$exe" && -f "$exe" ]] || continue
    echo
    echo "== $(basename "$exe")"
    "$exe"
done
