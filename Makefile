# Front door. Everything real happens in CMake; these targets pick the build
# directory, the sanitizer and the packages each job needs.
#   make          build (RelWithDebInfo) into build/
#   make run      build and start the main job
#   make test     lint, libFuzzer targets (bounded), a clang TSan build of
#                 everything (library, tests, examples: it is also the clang -Werror
#                 build) running the threaded tests (not the *_base variants: BASE-mode
#                 processes have no threads to race), then a gcc ASan+UBSan build of
#                 everything running the whole suite (its ctest summary prints last);
#                 both test passes run TEST_JOBS (nproc + 1) tests at a time
#   make bench    -O2 build and the benchmarks (bench/README.md)
#   make test-aarch64  the AArch64 context switch and the coroutine unit tests,
#                 cross-compiled and run under qemu-user (opt-in; ~1 min)
#   make audit    testssl.sh against `swoop serve --ssl-cert` (minutes; not part of make test):
#                 fails on any finding rated HIGH or CRITICAL
#   make install PREFIX=/some/dir

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc)
CMAKE  ?= cmake
GEN    := -G Ninja
# The sanitizer test passes spend half their time waiting (timers, children,
# a browser): twice as many tests as cores keeps both cores busy. "heavy"
# tests count as two (tests/CMakeLists.txt). The fuzzers use a core each.
TEST_JOBS ?= $(shell expr $(JOBS) + 1)
CTEST_FLAGS := --output-on-failure --no-tests=error
FUZZ_SECONDS ?= 10

.PHONY: all build run test test-aarch64 bench audit install lint format clean deps-build deps-test deps-bench

all: build

deps-build:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench

build: deps-build
	@$(CMAKE) -S . -B build $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWOOP_BUILD_TESTS=OFF >/dev/null
	@$(CMAKE) --build build

run: build
	./build/swoop demo

audit: build deps-test
	@scripts/audit-tls.sh build/swoop

lint: deps-test
	@tests/tools/check_layers.sh
	@tests/tools/check_format.sh

format:
	@git ls-files '*.c' '*.h' '*.cc' | xargs clang-format -i

test: deps-test lint
	@echo "== libFuzzer (clang, ASan+UBSan): corpus replay and $(FUZZ_SECONDS) s per target"
	@$(CMAKE) -S . -B build-fuzz $(GEN) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
		-DCMAKE_BUILD_TYPE=Debug -DSWOOP_SANITIZE=address,undefined -DSWOOP_FUZZ=ON \
		-DSWOOP_FUZZ_SECONDS=$(FUZZ_SECONDS) -DSWOOP_BUILD_TESTS=OFF -DSWOOP_BUILD_EXAMPLES=OFF >/dev/null
	@$(CMAKE) --build build-fuzz
	@cd build-fuzz && ctest $(CTEST_FLAGS) -j $(JOBS) -L fuzz
	@echo "== clang -Werror TSan build (library, tests, examples): threaded tests"
	@$(CMAKE) -S . -B build-tsan $(GEN) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
		-DCMAKE_BUILD_TYPE=Debug -DSWOOP_SANITIZE=thread >/dev/null
	@$(CMAKE) --build build-tsan
	@cd build-tsan && ctest $(CTEST_FLAGS) -j $(TEST_JOBS) -L tsan -E '_base$$'
	@echo "== gcc -Werror ASan+UBSan build: the whole suite"
	@$(CMAKE) -S . -B build-asan $(GEN) -DCMAKE_BUILD_TYPE=Debug -DSWOOP_SANITIZE=address,undefined >/dev/null
	@$(CMAKE) --build build-asan
	@cd build-asan && ctest $(CTEST_FLAGS) -j $(TEST_JOBS)

bench: deps-bench
	@$(CMAKE) -S . -B build-bench $(GEN) -DCMAKE_BUILD_TYPE=Release -DSWOOP_BUILD_BENCH=ON \
		-DSWOOP_BUILD_TESTS=OFF "-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" >/dev/null
	@$(CMAKE) --build build-bench
	@bench/run.sh build-bench

test-aarch64:
	@tests/tools/aarch64.sh

install: build
	@$(CMAKE) --install build --prefix "$(PREFIX)"

clean:
	rm -rf build build-clang build-tsan build-asan build-bench build-fuzz build-aarch64
