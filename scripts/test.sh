#!/usr/bin/env bash
# Every test from a fresh Debian machine: install, build (warnings are
# errors), run all CTest tests; then rebuild with AddressSanitizer and UBSan
# and run the tests that feed dltrain bad input or parse foreign files; then,
# where clang is present, build the libFuzzer harnesses and run each for a
# short fixed time (tests/fuzz, docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=build bash scripts/build.sh -DDLTRAIN_WERROR=ON
(cd build && ctest --output-on-failure -j 2 --timeout 1800)
BUILD_DIR=build-asan BUILD_TYPE=Debug bash scripts/build.sh -DDLTRAIN_SANITIZE=ON -DDLTRAIN_WERROR=ON
# OpenMP and OpenBLAS keep thread pools alive at exit; leaks there are not ours.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
(cd build-asan && ctest --output-on-failure -L sanitize --timeout 1800)
if command -v clang > /dev/null; then
    BUILD_DIR=build-fuzz bash scripts/build.sh -DCMAKE_C_COMPILER=clang -DDLTRAIN_FUZZ=ON \
        -DDLTRAIN_WERROR=ON
    unset ASAN_OPTIONS
    (cd build-fuzz && ctest --output-on-failure -L fuzz)
else
    echo "test.sh: clang not found, fuzz harnesses not built (apt-get install clang libomp-dev)"
fi
