#!/usr/bin/env bash
# End-to-end smoke test of the three programs as a user runs them: train a few steps on a small
# generated shapes set, caption good, missing and corrupt images (the bad ones must not stop the
# good ones, and the exit status must say something failed), emit JSON, evaluate, reject bad flags.
set -u
TOOLS=$(realpath "$1")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

"$TOOLS/train" --help | grep -q -- "--resume" || fail "train --help does not list --resume"
"$TOOLS/train" --epochs zero 2>"$WORK/err" && fail "a bad flag value was accepted"
grep -q "expects an integer" "$WORK/err" || fail "bad flag message: $(cat "$WORK/err")"
[ -e "$WORK/data" ] && fail "train did work (generated data) before rejecting a bad flag"
"$TOOLS/train" --no-such-flag 2>"$WORK/err" && fail "an unknown flag was accepted"
grep -q "unknown flag --no-such-flag" "$WORK/err" || fail "unknown flag message"

"$TOOLS/train" --data shapes --data-dir "$WORK/data" --train-images 24 --out "$WORK/run" \
  --epochs 1 --batch 4 --max-steps 3 --units 16 >"$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; fail "train"; }
[ -f "$WORK/run/checkpoint.h5" ] || fail "no checkpoint written"
[ -f "$WORK/run/train_log.csv" ] || fail "no CSV log written"

IMG1="$WORK/data/images/test/000001.jpg"
IMG2="$WORK/data/images/test/000002.jpg"
printf 'not a jpeg' >"$WORK/corrupt.jpg"
"$TOOLS/infer" --model "$WORK/run/checkpoint.h5" "$IMG1" "$WORK/missing.jpg" "$WORK/corrupt.jpg" "$IMG2" \
  >"$WORK/out.txt" 2>"$WORK/err.txt"
rc=$?
[ $rc -eq 1 ] || fail "infer exit status $rc, expected 1 when some images fail"
grep -q "000001.jpg" "$WORK/out.txt" || fail "the first good image was not captioned"
grep -q "000002.jpg" "$WORK/out.txt" || fail "the image after the bad ones was not captioned"
grep -q "missing.jpg" "$WORK/err.txt" || fail "no error line for the missing image"
grep -q "corrupt.jpg" "$WORK/err.txt" || fail "no error line for the corrupt image"

"$TOOLS/infer" --model "$WORK/run/checkpoint.h5" --json --beam 2 --attention-map "$WORK/att.png" "$IMG1" \
  >"$WORK/out.json" || fail "infer --json --beam"
grep -q '"caption"' "$WORK/out.json" || fail "no JSON caption"
[ -f "$WORK/att.png" ] || fail "no attention map written"
mkdir -p "$WORK/few"
cp "$IMG1" "$IMG2" "$WORK/few/"
"$TOOLS/infer" --model "$WORK/run/checkpoint.h5" --sample --top-k 3 "$WORK/few" >"$WORK/dir.txt" \
  || fail "infer --sample on a directory"
[ "$(wc -l <"$WORK/dir.txt")" -eq 2 ] || fail "a directory of 2 images gave $(wc -l <"$WORK/dir.txt") captions"
"$TOOLS/infer" --model "$WORK/nope.h5" "$IMG1" 2>"$WORK/err" && fail "a missing checkpoint was accepted"
grep -q "nope.h5" "$WORK/err" || fail "missing checkpoint message does not name the file"

"$TOOLS/eval" --model "$WORK/run/checkpoint.h5" --data "$WORK/data" --split test --limit 6 \
  --out "$WORK/scores.json" >"$WORK/eval.txt" 2>&1 || { cat "$WORK/eval.txt"; fail "eval"; }
grep -q "CIDEr-D" "$WORK/eval.txt" || fail "eval printed no CIDEr-D"
grep -q "shapes accuracy" "$WORK/eval.txt" || fail "eval printed no shapes accuracy"
echo "1 passed, 0 failed"
