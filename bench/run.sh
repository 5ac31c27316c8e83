#!/usr/bin/env bash
# Runs the CPU benchmarks at one thread count and prints glimpse next to PyTorch, Keras and
# ONNX Runtime. `make bench` calls `bash bench/run.sh build`.
#
#   bash bench/run.sh [BUILD_DIR]
#
# Environment: THREADS (default: all cores), DECODER_STEPS (timed steps, default 5),
# PROFILE=1 (adds the decoder's per-layer breakdown, glimpse and PyTorch, at 1 thread, and
# Inception-ResNet-v2's time per convolution shape at batch 1, glimpse and ONNX Runtime),
# IRV2_REPEATS (timed forwards at batch 1, default 3; batch 8 uses half, at least 2),
# LOG (where the full output goes, default BUILD_DIR/bench-results.log).
# The decoder also runs at 1 thread. A Python side whose package is missing is skipped with a
# message (`make bench` first installs them: scripts/install-bench-deps.sh); the GPU benchmarks (bench_gpu, bench/gpu_torch.py) are not run here.
set -uo pipefail

BUILD_DIR=${1:-build}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN="$BUILD_DIR/bench"
THREADS=${THREADS:-$(nproc)}
DECODER_STEPS=${DECODER_STEPS:-5}
IRV2_REPEATS=${IRV2_REPEATS:-3}
LOG=${LOG:-$BUILD_DIR/bench-results.log}

for program in bench_gemm bench_decoder bench_inception bench_caption_latency; do
  if [[ ! -x "$BIN/$program" ]]; then
    echo "run.sh: $BIN/$program is missing: build first (cmake --build $BUILD_DIR)" >&2
    exit 1
  fi
done

: > "$LOG"
# Every line goes to the terminal and to the log that summarize.py reads.
say() { echo "$@" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; }

has_python_module() { python3 -c "import $1" > /dev/null 2>&1; }
python_side() {  # python_side MODULE SCRIPT ARGS...: runs SCRIPT unless MODULE is missing
  local module=$1 script=$2
  shift 2
  if has_python_module "$module"; then
    run python3 "$BENCH_DIR/$script" "$@"
  else
    say "skipped $script: python module '$module' is not installed"
  fi
}

say "== machine"
say "CPU: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores available"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load: $(uptime | sed 's/.*load average/load average/')"
say "threads: $THREADS (decoder also at 1)"

ONE_AND_ALL=1
[[ "$THREADS" != 1 ]] && ONE_AND_ALL="1,$THREADS"

say ""
say "== 1. GEMM and conv2d throughput (bench_gemm --threads $ONE_AND_ALL)"
run "$BIN/bench_gemm" --threads "$ONE_AND_ALL"
say "-- the same matmuls through the PyTorch wheel's BLAS, for reference"
python_side torch gemm_torch.py --threads "$ONE_AND_ALL"

say ""
say "== 2. decoder training step"
DECODER_THREADS=("$THREADS")
[[ "$THREADS" != 1 ]] && DECODER_THREADS+=(1)
for t in "${DECODER_THREADS[@]}"; do
  run "$BIN/bench_decoder" --threads "$t" --steps "$DECODER_STEPS"
  python_side torch decoder_torch.py --threads "$t" --steps "$DECODER_STEPS"
  python_side keras decoder_keras.py --threads "$t" --steps "$DECODER_STEPS"
done

if [[ "${PROFILE:-0}" == 1 ]]; then
  say "-- per-layer breakdown at 1 thread"
  # Their RESULT lines stay out of the log: the summary holds the main runs only.
  "$BIN/bench_decoder" --threads 1 --steps 3 --warmup 1 --profile 2>&1 | grep -v '^RESULT' |
    tee -a "$LOG"
  if has_python_module torch; then
    python3 "$BENCH_DIR/decoder_torch.py" --threads 1 --steps 3 --warmup 1 --profile 2>&1 |
      grep -v '^RESULT' | tee -a "$LOG"
  fi
fi

say ""
say "== 3. Inception-ResNet-v2 forward (299x299, batch 1 and 8, $THREADS threads)"
run "$BIN/bench_inception" --threads "$THREADS" --repeats "$IRV2_REPEATS"
python_side torch inception_torch.py --threads "$THREADS" --repeats "$IRV2_REPEATS"
if has_python_module torch; then
  python_side onnxruntime inception_onnx.py --threads "$THREADS" --repeats "$IRV2_REPEATS"
else
  say "skipped inception_onnx.py: it exports the PyTorch model, and torch is not installed"
fi
if [[ "${PROFILE:-0}" == 1 ]]; then
  say "-- time per convolution shape at batch 1"
  "$BIN/bench_inception" --threads "$THREADS" --batches 1 --repeats "$IRV2_REPEATS" --profile 2>&1 |
    grep -v '^RESULT' | tee -a "$LOG"
  if has_python_module torch && has_python_module onnxruntime; then
    python3 "$BENCH_DIR/inception_onnx.py" --threads "$THREADS" --batches 1 \
      --repeats "$IRV2_REPEATS" --profile 2>&1 | grep -v '^RESULT' | tee -a "$LOG"
  fi
fi

say ""
say "== 4. caption latency (one image, encode + greedy decode of 20 tokens)"
run "$BIN/bench_caption_latency" --threads "$THREADS"

say ""
say "== summary (load now: $(uptime | sed 's/.*load average/load average/'))"
python3 "$BENCH_DIR/summarize.py" "$LOG" | tee -a "$LOG.summary"
echo "full output: $LOG"
