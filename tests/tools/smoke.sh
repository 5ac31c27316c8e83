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

# --trace (docs/tutorial.md §11): a Chrome/Perfetto trace of step 2, written whole, with the
# step's matmuls, backward nodes and optimizer update.
"$TOOLS/train" --data shapes --data-dir "$WORK/data" --train-images 24 --out "$WORK/run_trace" \
  --epochs 1 --batch 4 --max-steps 2 --units 16 --trace "$WORK/trace.json" >"$WORK/trace.log" 2>&1 ||
  { cat "$WORK/trace.log"; fail "train --trace"; }
grep -q "trace of step 2: [1-9][0-9]* events in $WORK/trace.json" "$WORK/trace.log" || fail "train --trace did not report its events"
for event in '"name": "matmul"' '"name": "matmul.backward"' '"name": "Adam.step"' '"ph": "X"'; do
  grep -q "$event" "$WORK/trace.json" || fail "no $event in the trace"
done
[ "$(tail -c 3 "$WORK/trace.json")" = "]}" ] || fail "the trace file is incomplete"
ls "$WORK" | grep -q "trace.json.tmp" && fail "a temporary trace file was left"

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
# The Transformer decoder: trains, and decodes one token at a time with its key/value cache.
"$TOOLS/train" --data shapes --data-dir "$WORK/data" --train-images 24 --out "$WORK/run_tf" --decoder transformer \
  --layers 1 --heads 2 --epochs 1 --batch 4 --max-steps 2 --units 16 >"$WORK/train_tf.log" 2>&1 \
  || { cat "$WORK/train_tf.log"; fail "train --decoder transformer"; }
grep -q "decoder transformer (1 layers, 2 heads)" "$WORK/train_tf.log" || fail "train did not report the transformer decoder"
"$TOOLS/infer" --model "$WORK/run_tf/checkpoint.h5" --beam 2 "$IMG1" >"$WORK/tf.txt" || fail "infer with a transformer decoder"
grep -q "000001.jpg" "$WORK/tf.txt" || fail "no transformer caption"
"$TOOLS/train" --decoder transformer --units 10 --heads 4 2>"$WORK/err" && fail "units not divisible by heads was accepted"
grep -q "not divisible" "$WORK/err" || fail "heads message: $(cat "$WORK/err")"
# The GRU with input feeding: trains, decodes step by step (its state carries the last context).
"$TOOLS/train" --data shapes --data-dir "$WORK/data" --train-images 24 --out "$WORK/run_if" --input-feeding on \
  --epochs 1 --batch 4 --max-steps 2 --units 16 >"$WORK/train_if.log" 2>&1 \
  || { cat "$WORK/train_if.log"; fail "train --input-feeding on"; }
grep -q "decoder gru with input feeding" "$WORK/train_if.log" || fail "train did not report input feeding"
"$TOOLS/infer" --model "$WORK/run_if/checkpoint.h5" --beam 2 "$IMG1" >"$WORK/if.txt" || fail "infer with input feeding"
grep -q "000001.jpg" "$WORK/if.txt" || fail "no caption with input feeding"
"$TOOLS/train" --decoder transformer --input-feeding on 2>"$WORK/err" && fail "input feeding with a transformer was accepted"
grep -q "GRU decoder only" "$WORK/err" || fail "input feeding message: $(cat "$WORK/err")"
# --device cuda on a machine without a usable GPU: each tool refuses with the same clear message.
if ! "$TOOLS/eval" --model "$WORK/run/checkpoint.h5" --data "$WORK/data" --split test --limit 2 --device cuda \
  >"$WORK/eval_cuda.txt" 2>"$WORK/err"; then
  grep -q "eval: --device cuda, but no CUDA device is available" "$WORK/err" || fail "eval --device cuda: $(cat "$WORK/err")"
  "$TOOLS/infer" --model "$WORK/run/checkpoint.h5" --device cuda "$IMG1" 2>"$WORK/err" && fail "infer --device cuda passed after eval's refused"
  grep -q "infer: --device cuda, but no CUDA device" "$WORK/err" || fail "infer --device cuda: $(cat "$WORK/err")"
fi

# A hand-made COCO-layout directory (captions_<split>2014.json beside train2014/), a feature cache of
# a frozen Inception-ResNet-v2 at a small input size, and training from that cache.
mkdir -p "$WORK/coco/annotations" "$WORK/coco/train2014" "$WORK/coco/val2014"
coco_json() {  # split first_index count
  local images="" annotations="" sep=""
  for i in $(seq "$2" $(($2 + $3 - 1))); do
    local name
    name=$(printf '%06d.jpg' "$i")
    cp "$WORK/data/images/train/$name" "$WORK/coco/$1/$name"
    images="$images$sep{\"id\": $i, \"file_name\": \"$name\"}"
    annotations="$annotations$sep{\"id\": $i, \"image_id\": $i, \"caption\": \"A picture number $i.\"}"
    sep=", "
  done
  echo "{\"images\": [$images], \"annotations\": [$annotations]}"
}
coco_json train2014 1 8 >"$WORK/coco/annotations/captions_train2014.json"
coco_json val2014 9 4 >"$WORK/coco/annotations/captions_val2014.json"
"$TOOLS/cache_features" --data "$WORK/coco" --out "$WORK/features.h5" --image-size 75 --batch 4 \
  >"$WORK/cache.log" 2>&1 || { cat "$WORK/cache.log"; fail "cache_features"; }
grep -q "train: 8 images" "$WORK/cache.log" || fail "cache_features did not read the train split"
COCO_TRAIN=(--data "$WORK/coco" --encoder inception_resnet_v2 --image-size 75 --feature-cache "$WORK/features.h5"
            --epochs 1 --batch 4 --max-steps 2 --units 16 --vocab-size 20 --max-len 8)
"$TOOLS/train" "${COCO_TRAIN[@]}" --out "$WORK/run_coco" >"$WORK/train_coco.log" 2>&1 \
  || { cat "$WORK/train_coco.log"; fail "train from a feature cache"; }
[ -f "$WORK/run_coco/checkpoint.h5" ] || fail "no checkpoint from the feature-cache run"
# Another seed means other (random) encoder weights: the cache must be refused, naming why.
"$TOOLS/train" "${COCO_TRAIN[@]}" --seed 2 --out "$WORK/run_coco2" 2>"$WORK/err" >/dev/null \
  && fail "a feature cache of other encoder weights was accepted"
grep -q "encoder weights" "$WORK/err" || fail "feature cache mismatch message: $(cat "$WORK/err")"
echo "1 passed, 0 failed"
