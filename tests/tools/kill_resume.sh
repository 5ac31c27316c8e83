#!/usr/bin/env bash
# Kill-and-resume (issue 13): a training run killed with SIGKILL at many points — after a step,
# in the middle of saving a checkpoint (temp file complete, or renamed but not yet synced), during
# validation, and at random moments — and resumed with --resume each time, must end with weights
# and optimizer state bit-identical to an uninterrupted run's, and with a log holding every row
# exactly once. The deterministic points use GLIMPSE_FAULT_KILL (io/fault_injection.h).
set -u
TOOLS=$(realpath "$1")
DIGEST=$(realpath "$2")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1

ARGS=(--data shapes --data-dir "$WORK/data" --train-images 24 --epochs 3 --batch 4 --units 16 --image-size 64
      --checkpoint-every 2 --threads 1 --seed 5)

"$TOOLS/train" "${ARGS[@]}" --out "$WORK/ref" >"$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; fail "uninterrupted run"; }
"$DIGEST" "$WORK/ref/checkpoint.h5" >"$WORK/ref.digest" || fail "digest of the uninterrupted run"

# One attempt: run (resuming when a checkpoint exists), optionally killed by a fault point or after
# a delay. Prints the exit status.
attempt() {  # fault delay
  local resume=()
  [ -f "$WORK/run/checkpoint.h5" ] && resume=(--resume)
  if [ -n "$2" ]; then
    GLIMPSE_FAULT_KILL="$1" "$TOOLS/train" "${ARGS[@]}" --out "$WORK/run" "${resume[@]}" >>"$WORK/run.log" 2>&1 &
    local pid=$!
    sleep "$2"
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
  else
    GLIMPSE_FAULT_KILL="$1" "$TOOLS/train" "${ARGS[@]}" --out "$WORK/run" "${resume[@]}" >>"$WORK/run.log" 2>&1
  fi
  echo $?
}

kills=0
for fault in step:3 checkpoint-written:1 validation:1 checkpoint-renamed:2 step:4 checkpoint-written:2 \
             validation:1 step:1 checkpoint-renamed:1; do
  rc=$(attempt "$fault" "")
  [ "$rc" -eq 137 ] && kills=$((kills + 1))
  [ "$rc" -eq 0 ] && break
  [ "$rc" -eq 137 ] || { cat "$WORK/run.log"; fail "attempt with $fault ended with status $rc"; }
done
[ "$kills" -ge 6 ] || fail "only $kills of the fault points were reached"
# Random moments: whatever the process was doing.
for delay in 0.4 1.3 0.9 2.2; do
  rc=$(attempt "" "$delay")
  [ "$rc" -eq 0 ] && break
done
# Finish.
for _ in 1 2 3; do
  rc=$(attempt "" "")
  [ "$rc" -eq 0 ] && break
done
[ "$rc" -eq 0 ] || { tail -30 "$WORK/run.log"; fail "the resumed run did not finish (status $rc)"; }
grep -q "resumed from" "$WORK/run.log" || fail "no run resumed"

"$DIGEST" "$WORK/run/checkpoint.h5" >"$WORK/run.digest" || fail "digest of the resumed run"
diff "$WORK/ref.digest" "$WORK/run.digest" >"$WORK/diff.txt" || {
  head -20 "$WORK/diff.txt"; fail "the killed-and-resumed run's state differs from the uninterrupted run's"; }

# The log: the same rows as the uninterrupted run (images_per_second aside), each once.
cut -d, -f1-5,7 "$WORK/ref/train_log.csv" >"$WORK/ref.rows"
cut -d, -f1-5,7 "$WORK/run/train_log.csv" >"$WORK/run.rows"
diff "$WORK/ref.rows" "$WORK/run.rows" >"$WORK/logdiff.txt" || {
  head -20 "$WORK/logdiff.txt"; fail "the resumed run's log differs from the uninterrupted run's"; }
# No temporary files of the killed processes left behind.
leftovers=$(find "$WORK/run" -name '*.tmp*' | wc -l)
[ "$leftovers" -eq 0 ] || { ls -la "$WORK/run"; fail "$leftovers temporary file(s) left in the run directory"; }
# Killed during the first validation, i.e. with a checkpoint from the epoch's last step, and the log
# lost as well: resume must still finish, with the same state.
mv "$WORK/run" "$WORK/run_first"
rc=$(attempt validation:1 "")
[ "$rc" -eq 137 ] || fail "the run was not killed in validation (status $rc)"
rm -f "$WORK/run/train_log.csv"
rc=$(attempt "" "")
[ "$rc" -eq 0 ] || { tail -20 "$WORK/run.log"; fail "resume without a log, from the epoch's last step, ended with status $rc"; }
"$DIGEST" "$WORK/run/checkpoint.h5" >"$WORK/run2.digest" || fail "digest of the run resumed without a log"
diff -q "$WORK/ref.digest" "$WORK/run2.digest" >/dev/null || fail "resumed without a log: state differs"
echo "kill_resume: $kills kills at fault points, state and log equal to the uninterrupted run's"
