#!/usr/bin/env bash
# A full disk while training saves (issue 13): the save must fail with a clear error and exit 1
# (no crash), the previous checkpoint must stay intact and loadable, and no temporary file may be
# left. Needs a small file system: a 4 MB tmpfs, which only root can mount; elsewhere the test
# reports itself skipped (exit 77).
set -u
TOOLS=$(realpath "$1")
DIGEST=$(realpath "$2")
WORK=$(mktemp -d)
SMALL="$WORK/small"
cleanup() { umount "$SMALL" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$SMALL"
if ! mount -t tmpfs -o size=4m tmpfs "$SMALL" 2>/dev/null; then
  echo "SKIP: cannot mount a small tmpfs here (needs root), so a full disk cannot be simulated"
  exit 77
fi
export OMP_NUM_THREADS=1
# A checkpoint of this model is about 2.8 MB: the first save fits, the second's temporary file not.
"$TOOLS/train" --data shapes --data-dir "$WORK/data" --train-images 24 --epochs 1 --batch 4 --units 16 \
  --image-size 64 --checkpoint-every 1 --threads 1 --out "$SMALL/run" >"$WORK/out.txt" 2>"$WORK/err.txt"
rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/err.txt"; fail "train on a full disk ended with status $rc, expected 1"; }
grep -q "checkpoint.h5 was not saved (No space left on device); the previous file is unchanged" "$WORK/err.txt" \
  || fail "unclear message: $(head -c 400 "$WORK/err.txt")"
"$DIGEST" "$SMALL/run/checkpoint.h5" >"$WORK/digest.txt" || fail "the previous checkpoint is not readable"
grep -q '"global_step":1' "$WORK/digest.txt" || fail "the previous checkpoint is not the first step's: $(tail -1 "$WORK/digest.txt")"
leftovers=$(find "$SMALL" -name '*.tmp*' | wc -l)
[ "$leftovers" -eq 0 ] || { ls -la "$SMALL/run"; fail "temporary files left on the full disk"; }
"$TOOLS/infer" --model "$SMALL/run/checkpoint.h5" "$WORK/data/images/test/000001.jpg" >/dev/null \
  || fail "infer cannot use the checkpoint that survived"
echo "disk_full: save failed cleanly (status 1), previous checkpoint intact"
