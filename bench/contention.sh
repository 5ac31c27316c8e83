#!/usr/bin/env bash
# How training throughput holds up when the machine is shared (issue 16): glimpse and PyTorch side
# by side, quiet and beside one competing process, for the shapes demo's training step and the
# notebook decoder's training step.
#
#   bash bench/contention.sh [BUILD_DIR]
#
# Conditions (the competitor starts 1 s before each measurement and is killed after it):
#   quiet  nothing else running
#   busy   `nice -n 19` single-thread busy loop
#   train  `nice -n 19` single-thread training run (bench_shapes_step --threads 1, the demo's
#          step, for as long as the measurement lasts)
# Measured in every condition: the shapes step at THREADS (glimpse, PyTorch) and at 1 thread
# (glimpse: "is THREADS threads under load ever worse than one?"), and the decoder step at
# THREADS (glimpse, PyTorch). Each round runs every program once under each condition (a
# program's three conditions back to back); the table shows medians over ROUNDS rounds and the
# median of each round's retained fraction of that round's quiet figure.
#
# Environment: THREADS (default: all cores), ROUNDS (default 5), SECONDS_PER_RUN (shapes step,
# default 4), DECODER_STEPS (default 3), LOG (default BUILD_DIR/contention.log).
# A run of the defaults takes about 10 minutes on the 2-core VM. Run it on an otherwise idle
# machine: the point is to control what competes.
set -uo pipefail

BUILD_DIR=${1:-build}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN="$BUILD_DIR/bench"
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
DECODER_STEPS=${DECODER_STEPS:-3}
LOG=${LOG:-$BUILD_DIR/contention.log}

for program in bench_shapes_step bench_decoder; do
  if [[ ! -x "$BIN/$program" ]]; then
    echo "contention.sh: $BIN/$program is missing: build first (cmake --build $BUILD_DIR)" >&2
    exit 1
  fi
done
HAVE_TORCH=1
python3 -c "import torch" > /dev/null 2>&1 || HAVE_TORCH=0

: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }
say "== contention benchmark: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores"
say "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load before: $(uptime | sed 's/.*load average/load average/')"
say "threads: $THREADS; rounds: $ROUNDS; shapes step timed for ${SECONDS_PER_RUN} s; decoder: $DECODER_STEPS steps"
[[ $HAVE_TORCH == 1 ]] || say "PyTorch is not installed: its rows are skipped (pip install torch)"

COMPETITOR_PID=""
start_competitor() {
  case $1 in
    quiet) COMPETITOR_PID="" ;;
    busy)
      nice -n 19 bash -c 'while :; do :; done' &
      COMPETITOR_PID=$! ;;
    train)
      nice -n 19 "$BIN/bench_shapes_step" --threads 1 --warmup 0 --seconds 100000 > /dev/null &
      COMPETITOR_PID=$! ;;
  esac
  [[ -n $COMPETITOR_PID ]] && sleep 1
}
stop_competitor() {
  if [[ -n $COMPETITOR_PID ]]; then
    kill "$COMPETITOR_PID" 2> /dev/null
    wait "$COMPETITOR_PID" 2> /dev/null
  fi
  COMPETITOR_PID=""
}
trap stop_competitor EXIT

# measure NAME CONDITION COMMAND...: one run; appends "NAME CONDITION round VALUE" (a rate: images/s
# or steps/s, higher is better) to the log's data lines.
measure() {
  local name=$1 condition=$2
  shift 2
  start_competitor "$condition"
  local out
  out=$("$@" 2>&1)
  stop_competitor
  local value
  value=$(echo "$out" | sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p' | tail -1)
  if [[ -z $value ]]; then  # the decoder benchmarks print step_ms
    value=$(echo "$out" | sed -n 's/^RESULT .*step_ms=\([0-9.]*\).*/\1/p' | tail -1)
    [[ -n $value ]] && value=$(python3 -c "print(f'{1000.0 / $value:.4f}')")
  fi
  if [[ -z $value ]]; then
    say "FAILED: $name ($condition): $*"
    echo "$out" | tail -5 | tee -a "$LOG"
    return
  fi
  echo "DATA $name $condition $round $value" >> "$LOG"
  printf '  %-28s %-6s %10s\n' "$name" "$condition" "$value"
}

# Each program runs its three conditions back to back, so that a round's quiet and loaded figures
# are seconds apart: the VM's own speed drifts between periods (bench/RESULTS.md), and a quiet
# figure from another minute would mix that drift into the retained fraction.
under_each_condition() {
  local name=$1
  shift
  for condition in quiet busy train; do measure "$name" "$condition" "$@"; done
}
for round in $(seq 1 "$ROUNDS"); do
  say "-- round $round of $ROUNDS"
  under_each_condition "glimpse-shapes-${THREADS}t" "$BIN/bench_shapes_step" --threads "$THREADS" --seconds "$SECONDS_PER_RUN"
  [[ $HAVE_TORCH == 1 ]] && under_each_condition "pytorch-shapes-${THREADS}t" \
    python3 "$BENCH_DIR/shapes_step_torch.py" --threads "$THREADS" --seconds "$SECONDS_PER_RUN"
  under_each_condition "glimpse-shapes-1t" "$BIN/bench_shapes_step" --threads 1 --seconds "$SECONDS_PER_RUN"
  under_each_condition "glimpse-decoder-${THREADS}t" "$BIN/bench_decoder" --threads "$THREADS" --steps "$DECODER_STEPS" --warmup 1
  [[ $HAVE_TORCH == 1 ]] && under_each_condition "pytorch-decoder-${THREADS}t" \
    python3 "$BENCH_DIR/decoder_torch.py" --threads "$THREADS" --steps "$DECODER_STEPS" --warmup 1
done

say ""
say "load after: $(uptime | sed 's/.*load average/load average/')"
python3 - "$LOG" <<'EOF' | tee -a "$LOG"
import collections, statistics, sys
runs = collections.defaultdict(dict)  # (name, condition) -> {round: value}
for line in open(sys.argv[1]):
    if line.startswith("DATA "):
        _, name, condition, round_, value = line.split()
        runs[name, condition][round_] = float(value)
names = list(dict.fromkeys(name for name, _ in runs))
print("medians over rounds (shapes: images/s; decoder: steps/s); 'kept' is the median over rounds of")
print("the loaded figure / the same round's quiet figure (measured seconds apart)")
print(f"{'program':28s} {'quiet':>9s} {'busy':>9s} {'kept':>6s} {'train':>9s} {'kept':>6s}")
for name in names:
    quiet = runs[name, "quiet"]
    cells = [f"{name:28s} {statistics.median(quiet.values()) if quiet else float('nan'):9.2f}"]
    for condition in ("busy", "train"):
        loaded = runs[name, condition]
        kept = [loaded[r] / quiet[r] for r in loaded if r in quiet]
        if loaded and kept:
            cells.append(f"{statistics.median(loaded.values()):9.2f} {100 * statistics.median(kept):5.0f}%")
        else:
            cells.append(f"{'-':>9s} {'-':>6s}")
    print(" ".join(cells))
EOF
