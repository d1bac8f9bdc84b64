#!/usr/bin/env bash
# Replays a fuzz target's committed corpus, then fuzzes it for a bounded time.
# New inputs go to a temporary directory, never into the repository; a crash
# leaves its input next to it and is printed (add it to the corpus once fixed).
# Usage: run_fuzz.sh TARGET CORPUS_DIR SECONDS
set -euo pipefail
exe=$1
corpus=$2
secs=$3
work=$(mktemp -d /tmp/swoop-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/new"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if ! "$exe" -max_total_time="$secs" -timeout=2 -rss_limit_mb=2048 -max_len=70000 \
    -artifact_prefix="$work/" -print_final_stats=1 "$work/new" "$corpus" 2>"$work/log"; then
    tail -60 "$work/log"
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
        [[ -e "$f" ]] || continue
        echo "failing input $(basename "$f") (base64):"
        base64 "$f" | head -40
    done
    exit 1
fi
grep -E '^(#|stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$work/log" | tail -4
echo "fuzz $(basename "$exe"): 1 passed, 0 failed"
