#!/usr/bin/env bash
# The ctest test fuzz_regressions_TARGET: replays TARGET's regression corpus
# (tests/fuzz/regressions/TARGET/, absent until something was found) and its seeds (seeds.sh)
# through the replay build of the target (replay_main.cpp).
#
# Usage: replay.sh REPLAY_BINARY TARGET
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binary="${1:?usage: replay.sh REPLAY_BINARY TARGET}"
target="${2:?usage: replay.sh REPLAY_BINARY TARGET}"
mapfile -t seed_files < <(bash "$here/seeds.sh" "$target")
# Keep the per-process input files out of the shared /tmp and remove them even after a crash.
work="$(mktemp -d "${TMPDIR:-/tmp}/glimpse-replay-$target.XXXXXX")"
trap 'rm -rf "$work"' EXIT
TMPDIR="$work" "$binary" --optional "$here/regressions/$target" "${seed_files[@]}"
