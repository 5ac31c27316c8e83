#!/usr/bin/env bash
# Trains several captioner configurations on the shapes dataset side by side and prints each one's
# test-split scores (greedy decoding): the tool behind the choice of `make demo`'s configuration.
# On a GPU machine the runs share the GPU (the tiny model leaves it mostly idle); on a CPU they
# share the cores, so run few at a time there.
#
# Usage: scripts/shapes-sweep.sh BUILD_DIR OUT_DIR DEVICE "NAME: train flags" ["NAME: flags" ...]
#   e.g. scripts/shapes-sweep.sh build runs/sweep cuda "gru: --epochs 5" \
#          "tf: --epochs 5 --decoder transformer"
# Every run uses the same generated dataset (OUT_DIR/shapes) and seed 1 unless its flags say
# otherwise; SWEEP_COMMON="--train-images 500" adds flags to every run (and to the generation).
# Results: OUT_DIR/NAME/{train.log,eval.log,eval_test.json}, a table in OUT_DIR/sweep.txt.
set -u
BUILD=$(realpath "$1")
OUT=$(realpath -m "$2")
DEVICE=$3
shift 3
mkdir -p "$OUT"
DATA="$OUT/shapes"
COMMON=${SWEEP_COMMON:-}

# Generate the dataset once, before the runs start (concurrent generators would race on it).
"$BUILD/tools/train" --data shapes --data-dir "$DATA" --out "$OUT/.generate" --max-steps 1 --epochs 1 \
  --device "$DEVICE" $COMMON >"$OUT/generate.log" 2>&1 || { cat "$OUT/generate.log"; exit 1; }

names=()
pids=()
for spec in "$@"; do
  name=${spec%%:*}
  flags=${spec#*:}
  names+=("$name")
  mkdir -p "$OUT/$name"
  (
    start=$(date +%s)
    # shellcheck disable=SC2086  # the flags are meant to split into words
    "$BUILD/tools/train" --data shapes --data-dir "$DATA" --out "$OUT/$name" --device "$DEVICE" \
      --seed 1 $COMMON $flags >"$OUT/$name/train.log" 2>&1 || { echo "train failed" >"$OUT/$name/failed"; exit 1; }
    echo $(($(date +%s) - start)) >"$OUT/$name/train_seconds"
    "$BUILD/tools/eval" --model "$OUT/$name/checkpoint.h5" --data "$DATA" --split test --device "$DEVICE" \
      --out "$OUT/$name/eval_test.json" >"$OUT/$name/eval.log" 2>&1 || echo "eval failed" >"$OUT/$name/failed"
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

{
  printf '%-10s %-8s %-8s %-8s %-8s %-8s %-8s  %s\n' run train_s BLEU-4 CIDEr-D one two three flags
  i=0
  for spec in "$@"; do
    name=${names[$i]}
    i=$((i + 1))
    if [ -f "$OUT/$name/failed" ]; then
      printf '%-10s %s\n' "$name" "$(cat "$OUT/$name/failed")"
      continue
    fi
    log="$OUT/$name/eval.log"
    pct() { grep -E "^ *$1 +object" "$log" | awk '{print $3}'; }
    printf '%-10s %-8s %-8s %-8s %-8s %-8s %-8s %s\n' "$name" "$(cat "$OUT/$name/train_seconds")" \
      "$(awk '/BLEU-4/ {print $2}' "$log")" "$(awk '/CIDEr-D/ {print $2}' "$log")" \
      "$(pct one)" "$(pct two)" "$(pct three)" "${spec#*:}"
  done
} | tee "$OUT/sweep.txt"
