#!/usr/bin/env bash
# Data-parallel scaling on this machine (issue 14): training throughput with 1 and 2 ranks under
# mpirun, next to one process using the same cores as threads, and the communication time per step
# that tools/train measures inside its collective calls (rank 0's; a wait for a slower rank counts).
#
#   bash bench/bench_dist.sh [BUILD_DIR]      (default: build; needs tools/train built with MPI)
#
# Environment: STEPS (timed steps per run, default 15), BATCH (global batch, default 16),
# IMAGE_SIZE (default 128: the demo's), UNITS (default 128: the demo's).
# Prints a Markdown table; the runs' output goes to BUILD_DIR/bench-dist/.
set -uo pipefail
BUILD_DIR=${1:-build}
TRAIN="$BUILD_DIR/tools/train"
STEPS=${STEPS:-15}
BATCH=${BATCH:-16}
IMAGE_SIZE=${IMAGE_SIZE:-128}
UNITS=${UNITS:-128}
OUT="$BUILD_DIR/bench-dist"
[ -x "$TRAIN" ] || { echo "bench_dist.sh: $TRAIN is missing: build it first" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench_dist.sh: mpirun not found (Debian: openmpi-bin)" >&2; exit 1; }
mkdir -p "$OUT"
MPI_ARGS=()
[ "$(id -u)" -eq 0 ] && MPI_ARGS+=(--allow-run-as-root)

# Enough images that the timed steps end before the epoch does (no validation in the timing).
IMAGES=$((BATCH * (STEPS + 2)))
ARGS=(--data shapes --data-dir "$OUT/data" --train-images "$IMAGES" --image-size "$IMAGE_SIZE" --units "$UNITS"
      --batch "$BATCH" --epochs 1 --max-steps "$STEPS" --seed 1)
# The dataset first, outside the timings.
"$TRAIN" "${ARGS[@]}" --max-steps 0 --out "$OUT/gen" >"$OUT/gen.log" 2>&1 || { cat "$OUT/gen.log"; exit 1; }

# One configuration: a label, the launcher (empty or "mpirun -np N"), the threads per process.
run() {
  local label=$1 ranks=$2 threads=$3 name
  name=$(echo "$label" | tr -c 'a-z0-9' '_')
  rm -rf "${OUT:?}/$name"
  local launcher=()
  [ "$ranks" -gt 0 ] && launcher=(mpirun -np "$ranks" "${MPI_ARGS[@]}" --bind-to none)
  local start end
  start=$(date +%s.%N)
  "${launcher[@]}" "$TRAIN" "${ARGS[@]}" --threads "$threads" --out "$OUT/$name" >"$OUT/$name.log" 2>&1 ||
    { tail -20 "$OUT/$name.log"; echo "bench_dist.sh: $label failed" >&2; exit 1; }
  end=$(date +%s.%N)
  # images_per_second of the last step: the whole job's images over the epoch's time so far.
  local ips comm
  ips=$(tail -1 "$OUT/$name/train_log.csv" | cut -d, -f6)
  comm=$(sed -n 's/^communication: \([0-9.]*\) ms per step.*/\1/p' "$OUT/$name.log")
  printf '| %s | %s | %s | %.1f | %s | %.1f |\n' "$label" "$([ "$ranks" -gt 0 ] && echo "$ranks" || echo "- (no MPI)")" \
    "$threads" "$ips" "${comm:--}" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
}

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $(sed -n 's/^model: //p' "$OUT/gen.log")"
echo "global batch $BATCH, $STEPS steps, ${IMAGE_SIZE}px, $(mpirun --version | head -1)"
echo
echo "| configuration | ranks | threads per rank | images/s | communication, ms/step (rank 0) | wall time incl. start, s |"
echo "|---|---|---|---|---|---|"
run "1 process, 1 thread" 0 1
run "1 process, 2 threads" 0 2
run "mpirun, 1 rank" 1 1
run "mpirun, 2 ranks" 2 1
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
