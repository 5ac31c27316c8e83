#!/usr/bin/env bash
# The main job (`make demo`): generate the embedded shapes dataset, train the tiny captioner on the
# CPU, evaluate it on the test split, and caption a few test images with their attention maps.
set -euo pipefail
BUILD=${1:-build}
OUT=${DEMO_OUT:-runs/demo}
DATA=${DEMO_DATA:-data/shapes}
EPOCHS=${DEMO_EPOCHS:-14}
START=${DEMO_START:-$(date +%s)}  # the Makefile passes the time the build began
mkdir -p "$OUT"

echo "== 1/3 training the tiny captioner on the shapes dataset (CPU, $EPOCHS epochs) =="
# The notebook's GRU decoder; each step trains on all five captions of its 32 images (the encoder
# runs once per image); Adam's learning rate warms up to 4e-3 over 200 steps, then decays along a
# cosine (bench/RESULTS.md has the sweeps behind these choices: 1e-3 learns relations too slowly).
"$BUILD/tools/train" --data shapes --data-dir "$DATA" --out "$OUT" --epochs "$EPOCHS" --warmup 200 \
  --lr 0.004 --captions-per-image 5 --seed 1

echo
echo "== 2/3 evaluating on the test split (greedy decoding) =="
"$BUILD/tools/eval" --model "$OUT/checkpoint.h5" --data "$DATA" --split test --out "$OUT/eval_test.json"

echo
echo "== 3/3 captioning a few test images, with attention maps =="
# The first four by name. (Not `ls | head`: under pipefail, ls killed by SIGPIPE once head has its
# four lines would fail the whole demo at its last step.)
IMAGES=("$DATA"/images/test/*.jpg)
"$BUILD/tools/infer" --model "$OUT/checkpoint.h5" --attention-map "$OUT/attention.png" "${IMAGES[@]:0:4}"

echo
echo "written:"
echo "  $OUT/checkpoint.h5      the trained model (tokenizer and optimizer state inside)"
echo "  $OUT/train_log.csv      per-step loss, learning rate, images/s; validation loss per epoch"
echo "  $OUT/loss_curve.png     the loss curve"
echo "  $OUT/eval_test.json     BLEU-1..4, ROUGE-L, CIDEr-D, shapes accuracy and every caption"
echo "  $OUT/attention-N.png    each word's attention over the image"
echo
echo "demo finished in $(( ($(date +%s) - START) / 60 )) min $(( ($(date +%s) - START) % 60 )) s"
