#!/usr/bin/env bash
# Which files seed which fuzz target: prints the seed files of TARGET, one absolute path a line.
# Used by run.sh (to build the starting corpus of `make fuzz`) and by replay.sh (to replay the
# same files under `make test`), so both always agree.
#
# Usage: seeds.sh TARGET     (TARGET as in tests/fuzz/fuzz_TARGET.cpp)
#        seeds.sh --targets  (every target)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="$(cd "$here/.." && pwd)/data"
seeds="$here/seeds"

if [ "${1:-}" = "--targets" ]; then
  for f in "$here"/fuzz_*.cpp; do f="${f##*/fuzz_}"; echo "${f%.cpp}"; done
  exit 0
fi

# Globs per target. The HDF5 targets also get the other HDF5 fixtures (h5py's reference file,
# the deliberately broken ones): different object layouts give the fuzzer more of libhdf5 to
# start from than one writer's files would.
target="${1:?usage: seeds.sh TARGET | --targets}"
case "$target" in
  jpeg|image_file) globs=("$data/images/*.jpg" "$data/bad_images/*") ;;
  png)             globs=("$seeds/png/*" "$data/bad_images/png_named.jpg") ;;
  checkpoint)      globs=("$seeds/checkpoint/*" "$data/hdf5/*.h5" "$data/bad_h5/*") ;;
  captioner)       globs=("$seeds/captioner/*" "$seeds/checkpoint/*" "$data/bad_h5/*") ;;
  keras_weights)   globs=("$data/keras/*.h5" "$data/inception/tiny_model.h5" "$data/inception/tiny_model.weights.h5"
                          "$data/inception/tiny_slim_names.h5" "$data/inception/tiny_slim_names_keras_order.h5"
                          "$data/bad_h5/*") ;;
  feature_cache)   globs=("$seeds/feature_cache/*" "$data/hdf5/*.h5" "$data/bad_h5/*") ;;
  coco_captions)   globs=("$data/captions/coco/*.json" "$data/bad_captions/*.json") ;;
  karpathy_captions) globs=("$data/captions/karpathy/*.json" "$data/bad_captions/*.json") ;;
  flickr_captions) globs=("$seeds/flickr_captions/*" "$data/captions/flickr/*.txt" "$data/bad_captions/*.txt") ;;
  tokenizer)       globs=("$seeds/tokenizer/*" "$data/tokenizer_fixture.json") ;;
  *) echo "seeds.sh: unknown target '$target'" >&2; exit 2 ;;
esac
shopt -s nullglob
found=0
for g in "${globs[@]}"; do
  # Word splitting is wanted here: it expands the glob (no path in the tree has a space).
  for f in $g; do
    if [ -f "$f" ]; then echo "$f"; found=1; fi
  done
done
# A target with no seeds means a renamed fixture: fail loudly rather than fuzz from nothing.
[ "$found" = 1 ] || { echo "seeds.sh: no seed files for '$target'" >&2; exit 1; }
