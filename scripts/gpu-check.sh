#!/usr/bin/env bash
# One command for a GPU machine: build glimpse with the CUDA backend, run the CUDA tests, run
# compute-sanitizer's memcheck over the CUDA parity test, run the GPU benchmarks (if any), run the
# tools (train, eval, infer) with --device cuda on a small shapes set, then the whole test suite,
# and print a summary table last.
#
# Every step is timed and its result recorded; a failing step does not stop the ones after it
# (a step that needs the build is skipped when the build failed). The whole run keeps to a time
# budget (GPU_CHECK_BUDGET seconds, default 480): each step's timeout is cut to what is left, and
# steps that no longer fit are skipped. Exit status: 0 when no step failed.
#
# Usage: bash scripts/gpu-check.sh            (from anywhere; works in the repository root)
# Environment:
#   BUILD=build-gpu       build directory          JOBS=16             parallel build jobs
#   GPU_CHECK_BUDGET=480  total seconds            CMAKE_ARGS=...      extra configure arguments
#   OUT=dir               if set, the logs (logs.tar.gz) and summary.txt are copied there
#   GPU_CHECK_AFTER_BUILD="command"   run in the background once the full build is done (e.g.
#                         scripts/shapes-sweep.sh); the benchmarks wait for it so that it cannot
#                         disturb their timings. Its output: $LOGS/after-build.log.
#
# If the full project cannot be configured (a library missing on the GPU machine), the GPU subset
# in scripts/gpu/CMakeLists.txt is built instead (header-only dependencies, copies of which may be
# carried in .deps/include).
set -u
set -o pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
BUILD=$(realpath -m "${BUILD:-build-gpu}")  # relative to the repository root
JOBS=${JOBS:-16}
BUDGET=${GPU_CHECK_BUDGET:-480}
CMAKE_ARGS=${CMAKE_ARGS:-}
LOGS="$BUILD/gpu-check-logs"
mkdir -p "$LOGS"
START=$(date +%s)

step_names=()
step_results=()
step_seconds=()

remaining() { echo $((BUDGET - ($(date +%s) - START))); }
log_of() { echo "$LOGS/$(printf '%s' "$1" | tr -c 'A-Za-z0-9_.-' '_').log"; }

record() {  # name result seconds
  step_names+=("$1")
  step_results+=("$2")
  step_seconds+=("$3")
  printf '==> %-34s %-28s %5ss\n' "$1" "$2" "$3"
}

# run_step NAME MAX_SECONDS COMMAND...: runs COMMAND with its output in $LOGS/NAME.log.
run_step() {
  local name=$1 max_seconds=$2
  shift 2
  local left
  left=$(remaining)
  if [ "$left" -lt 15 ]; then
    record "$name" "skipped (time budget)" 0
    return 2
  fi
  local limit=$((max_seconds < left ? max_seconds : left))
  local log
  log=$(log_of "$name")
  local t0 t1 rc
  echo "--- $name (limit ${limit}s): $*"
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ $rc -eq 0 ]; then
    record "$name" "pass" "$seconds"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    record "$name" "FAIL (timeout ${limit}s)" "$seconds"
    tail -n 30 "$log"
  else
    record "$name" "FAIL (exit $rc)" "$seconds"
    tail -n 40 "$log"
  fi
  return $rc
}

skip_step() { record "$1" "skipped ($2)" 0; }

# --- 0. The machine -----------------------------------------------------------------------------
echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT, build dir $BUILD, budget ${BUDGET}s"
if command -v nvidia-smi >/dev/null 2>&1; then
  run_step "gpu info" 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
    --format=csv
  cat "$(log_of "gpu info")"
else
  skip_step "gpu info" "no nvidia-smi"
fi
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
SANITIZER=$(command -v compute-sanitizer || echo "$(dirname "$NVCC")/compute-sanitizer")

# --- 1. Configure and build ---------------------------------------------------------------------
BUILT=0
PARITY=""
if run_step "configure" 90 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLIMPSE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" $CMAKE_ARGS; then
  if run_step "build" 300 cmake --build "$BUILD" -j "$JOBS"; then
    BUILT=1
    PARITY="$BUILD/tests/test_cuda_parity"
  fi
else
  # The GPU machine usually lacks HDF5/libjpeg/libpng development files: build the GPU subset
  # (scripts/gpu/CMakeLists.txt: tensor, cuda, nn, the captioner, their CUDA tests and the GPU
  # benchmark), which needs only header-only libraries, carried in .deps/include when missing.
  MINI_BUILD="$BUILD/subset"
  if run_step "configure (gpu subset)" 90 cmake -S "$ROOT/scripts/gpu" -B "$MINI_BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
    -DGLIMPSE_EXTRA_INCLUDE="$ROOT/.deps/include"; then
    if run_step "build (gpu subset)" 300 cmake --build "$MINI_BUILD" -j "$JOBS"; then
      BUILT=2
      PARITY="$MINI_BUILD/test_cuda_parity"
    fi
  fi
fi

AFTER_BUILD_PID=""
if [ "$BUILT" = 1 ] && [ -n "${GPU_CHECK_AFTER_BUILD:-}" ]; then
  echo "--- after-build job in the background: $GPU_CHECK_AFTER_BUILD"
  AFTER_BUILD_T0=$(date +%s)
  bash -c "$GPU_CHECK_AFTER_BUILD" >"$LOGS/after-build.log" 2>&1 &
  AFTER_BUILD_PID=$!
fi

# --- 2. CUDA tests ------------------------------------------------------------------------------
if [ "$BUILT" = 1 ]; then
  run_step "cuda tests (ctest -R cuda)" 150 ctest --test-dir "$BUILD" -R cuda --output-on-failure
elif [ "$BUILT" = 2 ]; then
  run_step "cuda kernel parity (test_cuda_parity)" 150 "$PARITY"
  run_step "cuda ops + training step (test_cuda_ops)" 150 "$MINI_BUILD/test_cuda_ops"
  run_step "cpu gradient checks (test_ops_grad)" 120 "$MINI_BUILD/test_ops_grad"
else
  skip_step "cuda tests" "no build"
fi

# --- 3. compute-sanitizer memcheck over the parity test -----------------------------------------
# Without the caching allocator, so that every buffer has its exact bounds.
if [ -z "$PARITY" ]; then
  skip_step "memcheck (parity test)" "no build"
elif [ ! -x "$SANITIZER" ]; then
  skip_step "memcheck (parity test)" "no compute-sanitizer"
else
  # --report-api-errors no: the allocator test provokes an out-of-memory error on purpose, which
  # memcheck would otherwise count as an error; memory access errors are still reported.
  run_step "memcheck (parity test)" 150 env GLIMPSE_CUDA_NO_CACHE=1 "$SANITIZER" --tool memcheck \
    --report-api-errors no \
    --error-exitcode 99 --print-limit 20 "$PARITY"
  grep -E "ERROR SUMMARY|=========.*(Invalid|Error)" "$(log_of "memcheck (parity test)")" |
    head -n 20
fi

if [ -n "$AFTER_BUILD_PID" ]; then
  wait "$AFTER_BUILD_PID"
  rc=$?
  record "after-build job" "$([ $rc -eq 0 ] && echo pass || echo "FAIL (exit $rc)")" \
    "$(($(date +%s) - AFTER_BUILD_T0))"
  tail -n 20 "$LOGS/after-build.log"
fi

# --- 4. GPU benchmarks --------------------------------------------------------------------------
benches=()
if [ "$BUILT" = 1 ]; then
  for b in "$BUILD"/bench/bench_gpu*; do
    [ -x "$b" ] && [ -f "$b" ] && benches+=("$b")
  done
fi
if [ "$BUILT" = 2 ] && [ -x "$MINI_BUILD/bench_gpu" ]; then
  benches+=("$MINI_BUILD/bench_gpu")
fi
if [ ${#benches[@]} -eq 0 ]; then
  skip_step "gpu benchmarks" "none built"
else
  for b in "${benches[@]}"; do
    run_step "bench $(basename "$b")" 100 "$b"
    tail -n 25 "$(log_of "bench $(basename "$b")")"
  done
fi

if command -v python3 >/dev/null 2>&1 && python3 -c "import torch" >/dev/null 2>&1; then
  run_step "bench gpu_torch.py (PyTorch eager)" 110 env PYTHONUNBUFFERED=1 python3 "$ROOT/bench/gpu_torch.py"
  tail -n 25 "$(log_of "bench gpu_torch.py (PyTorch eager)")"
else
  skip_step "bench gpu_torch.py" "no PyTorch"
fi

# --- 5. The tools on the GPU --------------------------------------------------------------------
# train, eval and infer as a user runs them, with --device cuda, on a small generated shapes set:
# 512 training images, 2 epochs (32 steps of batch 32); eval on the first 100 test images; infer
# with an attention map on two; well under a minute on an H100/H200. The train step's result
# carries the epoch-2 throughput from train_log.csv (images/s over the epoch's steps, with the
# decoded images already cached). Outputs are kept in $BUILD/gpu-check-tools; the log, scores and
# attention maps are also copied next to the step logs.
TOOLS_TRAIN_IPS=""
if [ "$BUILT" != 1 ]; then
  skip_step "tools on the GPU" "no full build"
elif [ ! -x "$BUILD/tools/train" ] || [ ! -x "$BUILD/tools/eval" ] || [ ! -x "$BUILD/tools/infer" ]; then
  skip_step "tools on the GPU" "tools not built"
else
  TOOLS_WORK="$BUILD/gpu-check-tools"
  rm -rf "$TOOLS_WORK"
  mkdir -p "$TOOLS_WORK"
  # fail_last_step REASON: a step whose command exited 0 but did not produce what it should.
  fail_last_step() {
    local last=$((${#step_results[@]} - 1))
    step_results[last]="FAIL ($1)"
    echo "==> ${step_names[last]}: FAIL ($1)"
  }
  if run_step "tools: train --device cuda" 120 "$BUILD/tools/train" --data shapes \
    --data-dir "$TOOLS_WORK/shapes" --train-images 512 --epochs 2 --device cuda \
    --out "$TOOLS_WORK/run"; then
    if [ ! -f "$TOOLS_WORK/run/checkpoint.h5" ]; then
      fail_last_step "no checkpoint.h5"
    else
      # train_log.csv: global_step,epoch,step,loss,learning_rate,images_per_second,val_loss; step
      # rows carry images_per_second since the epoch began, so epoch 2's last step row is its mean.
      TOOLS_TRAIN_IPS=$(awk -F, 'NR > 1 && $2 == 2 && $6 != "" { ips = $6 } END { if (ips != "") printf "%.1f", ips }' \
        "$TOOLS_WORK/run/train_log.csv" 2>/dev/null)
      step_results[$((${#step_results[@]} - 1))]="pass (${TOOLS_TRAIN_IPS:-?} img/s)"
      echo "train --device cuda: epoch 2 at ${TOOLS_TRAIN_IPS:-?} images/s"
      cp "$TOOLS_WORK/run/train_log.csv" "$LOGS/tools-train_log.csv" 2>/dev/null
    fi
  fi
  if [ -f "$TOOLS_WORK/run/checkpoint.h5" ]; then
    if run_step "tools: eval --device cuda" 60 "$BUILD/tools/eval" \
      --model "$TOOLS_WORK/run/checkpoint.h5" --data "$TOOLS_WORK/shapes" --split test --limit 100 \
      --device cuda --out "$TOOLS_WORK/eval_test.json"; then
      if ! grep -q "CIDEr-D" "$(log_of "tools: eval --device cuda")"; then
        fail_last_step "no scores printed"
      fi
      cp "$TOOLS_WORK/eval_test.json" "$LOGS/tools-eval_test.json" 2>/dev/null
    fi
    grep -E "images \(|BLEU-4|CIDEr-D|all scenes" "$(log_of "tools: eval --device cuda")" 2>/dev/null |
      head -n 5
    if run_step "tools: infer --device cuda" 30 "$BUILD/tools/infer" --device cuda \
      --model "$TOOLS_WORK/run/checkpoint.h5" --attention-map "$TOOLS_WORK/att.png" \
      "$TOOLS_WORK/shapes/images/test/000001.jpg" "$TOOLS_WORK/shapes/images/test/000002.jpg"; then
      # Two images: the maps are att-1.png and att-2.png; one caption line per image.
      if [ ! -s "$TOOLS_WORK/att-1.png" ] || [ ! -s "$TOOLS_WORK/att-2.png" ]; then
        fail_last_step "no attention maps"
      elif [ "$(grep -c "000001.jpg\|000002.jpg" "$(log_of "tools: infer --device cuda")")" -ne 2 ]; then
        fail_last_step "expected 2 captions"
      fi
      cp "$TOOLS_WORK"/att-*.png "$LOGS/" 2>/dev/null
    fi
    cat "$(log_of "tools: infer --device cuda")" 2>/dev/null | head -n 4
  else
    skip_step "tools: eval --device cuda" "no checkpoint"
    skip_step "tools: infer --device cuda" "no checkpoint"
  fi
fi

# --- 6. The whole test suite (CPU tests included) -----------------------------------------------
if [ "$BUILT" = 1 ]; then
  run_step "all tests (ctest)" 240 ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\(SEGFAULT\)|Not Run" \
    "$(log_of "all tests (ctest)")" | head -n 30
else
  skip_step "all tests (ctest)" "no full build"
fi

# --- Summary ------------------------------------------------------------------------------------
failed=0
for result in "${step_results[@]}"; do
  case "$result" in FAIL*) failed=1 ;; esac
done
summary="$LOGS/summary.txt"
{
  echo
  echo "gpu-check summary ($(($(date +%s) - START))s of ${BUDGET}s budget; logs in $LOGS)"
  printf '%-36s %-28s %8s\n' "step" "result" "seconds"
  printf '%-36s %-28s %8s\n' "------------------------------------" "----------------------------" \
    "--------"
  for i in "${!step_names[@]}"; do
    printf '%-36s %-28s %8s\n' "${step_names[$i]}" "${step_results[$i]}" "${step_seconds[$i]}"
  done
  if [ -n "$TOOLS_TRAIN_IPS" ]; then
    echo "train --device cuda (shapes, 512 images, batch 32), epoch 2: $TOOLS_TRAIN_IPS img/s"
  fi
  if [ $failed -eq 0 ]; then echo "RESULT: no step failed"; else echo "RESULT: FAILED"; fi
} >"$summary"
cat "$summary"

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$summary" "$OUT/summary.txt"
  tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null
fi
exit $failed
