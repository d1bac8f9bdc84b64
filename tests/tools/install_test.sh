#!/usr/bin/env bash
# Installs swoop into a temporary prefix, moves the prefix elsewhere (the .pc
# file must find its prefix relative to itself), and builds programs against
# it three ways: pkg-config (shared), pkg-config --static (a static binary),
# and CMake's find_package(swoop). Each program must run and print its result.
set -euo pipefail
src=${SWOOP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d /tmp/swoop-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "# plain build of the library"
# Unoptimized, no debug info: what is checked here is the installed tree and how
# consumers find and link it, not the code generation; -O0 halves the build.
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG=-O0 \
    -DSWOOP_BUILD_TESTS=OFF -DSWOOP_BUILD_EXAMPLES=OFF -DSWOOP_SANITIZE= >/dev/null
cmake --build "$work/build" >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null
mv "$work/prefix" "$work/moved"
prefix="$work/moved"
libdir=$(dirname "$(find "$prefix" -name swoop.pc | head -1)")/..
export PKG_CONFIG_PATH="$libdir/pkgconfig"

cat >"$work/prog.c" <<'C'
#include <stdio.h>
#include <swoop/swoop.h>
static int fired;
static void cb(int64_t id, void *arg) { fired++; }
int main(void)
{
    swoop_timer_after(1, cb, NULL);
    swoop_loop_run(swoop_loop_default());
    swoop_loop_free(swoop_loop_default());
    printf("swoop %s fired %d\n", swoop_version(), fired);
    return fired == 1 ? 0 : 1;
}
C

echo "# pkg-config, shared"
test "$(pkg-config --variable=prefix swoop)" != ""
# shellcheck disable=SC2046
cc -o "$work/prog_shared" "$work/prog.c" $(pkg-config --cflags --libs swoop)
out=$(LD_LIBRARY_PATH="$libdir" "$work/prog_shared")
grep -q "fired 1" <<<"$out"
# (Output captured first: with pipefail, grep -q closing the pipe early fails the writer.)
deps=$(ldd "$work/prog_shared")
grep -q libswoop.so <<<"$deps"

echo "# pkg-config --static, fully static binary"
# shellcheck disable=SC2046
cc -static -o "$work/prog_static" "$work/prog.c" $(pkg-config --cflags --static --libs swoop)
out=$("$work/prog_static")
grep -q "fired 1" <<<"$out"
deps=$(ldd "$work/prog_static" 2>&1 || true)
if grep -q libswoop <<<"$deps"; then
    echo "static binary still needs libswoop.so" >&2
    exit 1
fi

echo "# CMake find_package(swoop)"
mkdir -p "$work/cm"
cp "$work/prog.c" "$work/cm/prog.c"
cat >"$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(swoop 0.1 REQUIRED)
add_executable(prog_cmake prog.c)
target_link_libraries(prog_cmake PRIVATE swoop::swoop_static)
CM
cmake -S "$work/cm" -B "$work/cm/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm/build" >/dev/null
out=$("$work/cm/build/prog_cmake")
grep -q "fired 1" <<<"$out"

echo "install_test: 3 passed, 0 failed"
