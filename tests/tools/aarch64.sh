#!/usr/bin/env bash
# The AArch64 context switch and the coroutine unit tests, cross-compiled
# (aarch64-linux-gnu-gcc -static) and run under qemu-aarch64 (qemu-user): the
# switch is assembly per CPU, and x86-64 runs of the suite never execute it.
# Opt-in (make test-aarch64), not part of make test. Installs its packages
# through scripts/install-deps.sh aarch64.
#
# 1. tests/tools/aarch64_switch.c: the switch alone (x19-x28 and d8-d15 on
#    both sides, FPCR, a fresh stack's entry, deep recursion, 2 M switches).
# 2. tests/unit/co/*.c with src/co, src/event, src/base and the test runner:
#    the scheduler, channels, I/O waits, the overflow reporter. One test is
#    left out: map_count_exhaustion_is_an_error maps until vm.max_map_count
#    runs out, which kills qemu itself (its own allocations fail first).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh aarch64

CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU_AARCH64:-qemu-aarch64}
out=${AARCH64_BUILD:-build-aarch64}
mkdir -p "$out"
flags=(-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes
    -Wpointer-arith -Wshadow -Wformat=2 -Wvla -Wno-unused-parameter -Werror -static -pthread
    -Isrc -Iinclude)

echo "== aarch64: the switch alone"
"$CC" "${flags[@]}" src/co/switch.c tests/tools/aarch64_switch.c -o "$out/switch" -lm
"$QEMU" "$out/switch"

# The runner re-executes itself to set sanitizer options unless this is set;
# under qemu-user /proc/self/exe cannot be executed without binfmt_misc.
reports=$(mktemp -d /tmp/swoop-aarch64.XXXXXX)
trap 'rm -rf "$reports"' EXIT
export SWOOP_TEST_REPORT_DIR=$reports

# getaddrinfo in a static binary: the linker's warning is expected (the tests
# resolve numeric addresses and localhost only).
lib=(src/co/*.c src/event/*.c src/base/*.c tests/runner/runner.c tests/runner/helpers.c)
fail=0
for t in tests/unit/co/*.c; do
    name=$(basename "$t" .c)
    echo "== aarch64: unit co/$name"
    "$CC" "${flags[@]}" -Itests/runner "${lib[@]}" "$t" -o "$out/co_$name" -lm 2>"$out/co_$name.ld" ||
        { cat "$out/co_$name.ld"; exit 1; }
    mapfile -t tests < <("$QEMU" "$out/co_$name" --list | grep -vx map_count_exhaustion_is_an_error)
    if ! "$QEMU" "$out/co_$name" "${tests[@]}" 2>"$out/co_$name.log"; then
        tail -40 "$out/co_$name.log"
        fail=1
    fi
done
exit $fail
