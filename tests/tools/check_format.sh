#!/usr/bin/env bash
# clang-format --dry-run over every tracked C file (STYLE.md section 13).
set -euo pipefail
cd "$(dirname "$0")/../.."
files=$(git ls-files '*.c' '*.h' '*.cc' 2>/dev/null || find src include tests bench examples -name '*.[ch]')
[[ -z "$files" ]] && exit 0
# One clang-format per core, 25 files each (xargs fails when any of them does).
# shellcheck disable=SC2086
printf '%s\n' $files | xargs -P "$(nproc)" -n 25 clang-format --dry-run -Werror
echo "check_format: ok"
