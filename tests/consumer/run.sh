#!/usr/bin/env bash
# The out-of-tree consumer test: `cmake --install` the build into a scratch prefix, then configure,
# build and run tests/consumer (find_package(glimpse), glimpse::glimpse) against it alone.
#
#   run.sh BUILD_DIR
set -euo pipefail
BUILD=$(realpath "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log" || { cat "$WORK/install.log"; exit 1; }
test -f "$WORK/prefix/include/glimpse/glimpse.h" || { echo "FAIL: the umbrella header was not installed"; exit 1; }
# Only the install prefix: the consumer must not see the source or build tree.
cmake -S "$HERE" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$WORK/prefix" \
  -DCMAKE_CXX_COMPILER="$(cmake -LA -N "$BUILD" | sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p')" >"$WORK/configure.log" 2>&1 ||
  { cat "$WORK/configure.log"; echo "FAIL: find_package(glimpse)"; exit 1; }
cmake --build "$WORK/build" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; echo "FAIL: building the consumer"; exit 1; }
if grep -q -- "-I$(dirname "$HERE")" "$WORK/build/CMakeFiles/consumer.dir/flags.make" 2>/dev/null; then
  echo "FAIL: the consumer's include path reaches into the source tree"; exit 1
fi
"$WORK/build/consumer" "$WORK/scratch.h5"
echo "consumer: PASS (installed to a scratch prefix, found with find_package(glimpse))"
