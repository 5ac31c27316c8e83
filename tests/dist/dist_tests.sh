#!/usr/bin/env bash
# Data-parallel training (issue 14) under mpirun: two CPU ranks on this machine, a tiny model.
#
#   dist_tests.sh CASE TOOLS_DIR DIST_CHECK CHECKPOINT_DIGEST CHECKPOINT_COMPARE
#
#   comm         the MPI communicator's operations (dist_check comm mpi)
#   nccl_parity  the NCCL communicator against MPI (skips without a GPU or an NCCL build)
#   same_state   every rank holds the same weights, buffers and optimizer state after K steps,
#                from different initial weights (dist_check train)
#   equivalence  2 ranks x batch B/2 = 1 process x batch B: gradients after one step, weights,
#                moments, losses and validation loss after an epoch, and a run resumed with a
#                different number of ranks
#   kill_resume  a 2-rank run killed (kill -9 on mpirun, at random moments and at fault points)
#                and resumed ends bit-identical to an uninterrupted 2-rank run
#   uneven       unreadable images (ranks with fewer or no samples in a step) and a dataset that
#                does not divide into global batches: the run finishes, on every rank
#   feature_cache  cache_features on 2 ranks writes the file one process writes (same features,
#                same order), with an unreadable image and an image count that does not divide
#                into rounds; a 2-rank training run from that cache
#
# Exit status: 0 pass, 1 fail, 77 skip (mpirun missing; nccl_parity without GPU/NCCL).
set -u
CASE=$1
TOOLS=$(realpath "$2")
DIST_CHECK=$(realpath "$3")
DIGEST=$(realpath "$4")
COMPARE=$(realpath "$5")
WORK=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

MPIRUN=$(command -v mpirun || true)
[ -n "$MPIRUN" ] || { echo "SKIP: mpirun not found (Debian: openmpi-bin; scripts/install-deps.sh installs it)"; exit 77; }
# Two ranks on however many cores there are (--oversubscribe), as root in a container
# (--allow-run-as-root), over shared memory only (no network needed), a waiting rank yielding its
# core (ctest runs other tests beside these); vader's single-copy mechanism uses ptrace-like
# cross-memory attach, which containers often forbid: off.
MPI_ARGS=(--oversubscribe --mca btl self,vader --mca mpi_yield_when_idle 1)
[ "$(id -u)" -eq 0 ] && MPI_ARGS+=(--allow-run-as-root)
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1
# Under `make test-asan`: OpenMPI's own allocations at MPI_Init (many from plugins it unloads
# again, so no suppression can name them) are reported as leaks at exit, so leak checking is off
# for these runs; AddressSanitizer's other checks and UBSan stay on, and every other test still
# checks glimpse for leaks.
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
mpi() {  # N command...
  local n=$1
  shift
  "$MPIRUN" -np "$n" "${MPI_ARGS[@]}" "$@"
}

# The tiny model of every case: 64-pixel images, 16 units, one thread per rank.
TINY=(--data shapes --data-dir "$WORK/data" --train-images 24 --units 16 --image-size 64 --threads 1)

case "$CASE" in
comm)
  mpi 2 "$DIST_CHECK" comm mpi || fail "the MPI communicator"
  # One rank (a singleton under mpirun): every operation is the identity.
  mpi 1 "$DIST_CHECK" comm mpi || fail "the MPI communicator on one rank"
  ;;

nccl_parity)
  mpi 2 "$DIST_CHECK" comm nccl
  exit $?  # 77 (skip) without an NCCL build or a GPU
  ;;

same_state)
  "$TOOLS/train" "${TINY[@]}" --epochs 1 --batch 4 --max-steps 0 --out "$WORK/gen" >"$WORK/gen.log" 2>&1 ||
    { cat "$WORK/gen.log"; fail "generating the dataset"; }
  mpi 2 "$DIST_CHECK" train "$WORK/data" "$WORK/run" 3 >"$WORK/check.log" 2>&1
  rc=$?
  cat "$WORK/check.log"
  [ $rc -eq 0 ] || fail "the ranks' states after 3 steps (status $rc)"
  [ "$(grep -c 'state digest' "$WORK/check.log")" -eq 2 ] || fail "expected a digest from each of the 2 ranks"
  ;;

equivalence)
  # The encoder is frozen: a trained one normalises with BatchNorm statistics of each rank's half
  # batch, which one process computes over the whole batch (docs/distributed.md).
  ARGS=("${TINY[@]}" --freeze-encoder --epochs 1 --seed 5 --lr 0.003)
  run() {  # ranks out extra...
    local ranks=$1 out=$2
    shift 2
    if [ "$ranks" -eq 0 ]; then
      "$TOOLS/train" "${ARGS[@]}" --out "$WORK/$out" "$@" >"$WORK/$out.log" 2>&1
    else
      mpi "$ranks" "$TOOLS/train" "${ARGS[@]}" --out "$WORK/$out" "$@" >"$WORK/$out.log" 2>&1
    fi || { tail -30 "$WORK/$out.log"; fail "run $out"; }
  }
  # Gradients: after one step Adam's first moment is exactly 0.1 x the gradient.
  run 0 one_step --batch 4 --max-steps 1
  run 2 two_step --batch 4 --max-steps 1
  grep -q "data-parallel: 2 rank(s) over mpi, 2 images per rank per step" "$WORK/two_step.log" ||
    fail "the 2-rank run did not say it was data-parallel: $(head -5 "$WORK/two_step.log")"
  echo "gradients (Adam m after one step), 1 process x 4 vs 2 ranks x 2:"
  "$COMPARE" "$WORK/one_step/checkpoint.h5" "$WORK/two_step/checkpoint.h5" 1e-5 /optimizer/adam/m ||
    fail "the 2-rank gradients differ from one process's"
  # A whole epoch (6 steps, then validation): weights and both moments.
  run 0 one --batch 4
  run 2 two --batch 4
  echo "weights and Adam moments after an epoch:"
  "$COMPARE" "$WORK/one/checkpoint.h5" "$WORK/two/checkpoint.h5" 1e-4 ||
    fail "after an epoch the 2-rank state differs from one process's"
  # The logs: the same steps, the same losses (rank 0 logs the GLOBAL mean) and validation loss.
  paste -d, "$WORK/one/train_log.csv" "$WORK/two/train_log.csv" | tail -n +2 | awk -F, '
    { a = ($4 != "") ? $4 : $7; b = ($11 != "") ? $11 : $14
      if ($1 != $8) { print "step " $1 " vs " $8; bad = 1 }
      d = a - b; if (d < 0) d = -d
      if (d > 1e-5 * (a < 0 ? -a : a)) { print "step " $1 ": loss " a " vs " b; bad = 1 }
      n++ }
    END { if (n != 7) { print n " rows, expected 6 steps + 1 validation"; bad = 1 }; exit bad }' ||
    fail "the 2-rank log differs from one process's"
  # A control: a different batch (other images per step) must fail the same comparisons, or the
  # tolerance proves nothing.
  run 0 other --batch 2 --max-steps 1
  "$COMPARE" "$WORK/one_step/checkpoint.h5" "$WORK/other/checkpoint.h5" 1e-5 /optimizer/adam/m >/dev/null &&
    fail "the comparison does not tell batch 2 from batch 4"
  # Resume with another number of ranks: 2 ranks for 3 steps, then 1 process to the end.
  run 2 mixed --batch 4 --max-steps 3
  run 0 mixed --batch 4 --resume
  echo "2 ranks for 3 steps then 1 process, vs 1 process throughout:"
  "$COMPARE" "$WORK/one/checkpoint.h5" "$WORK/mixed/checkpoint.h5" 1e-4 ||
    fail "a run resumed with another number of ranks differs"
  ;;

kill_resume)
  ARGS=("${TINY[@]}" --epochs 2 --batch 4 --checkpoint-every 2 --seed 7)
  mpi 2 "$TOOLS/train" "${ARGS[@]}" --out "$WORK/ref" >"$WORK/ref.log" 2>&1 ||
    { tail -30 "$WORK/ref.log"; fail "the uninterrupted 2-rank run"; }
  "$DIGEST" "$WORK/ref/checkpoint.h5" >"$WORK/ref.digest" || fail "digest of the uninterrupted run"
  # One attempt: start (resuming when a checkpoint exists); with a delay, kill -9 mpirun after it
  # and wait until its ranks, which lose their launcher, have exited too (a resumed run must not
  # race a rank of the killed one). Prints mpirun's exit status.
  attempt() {  # fault delay
    local resume=()
    [ -f "$WORK/run/checkpoint.h5" ] && resume=(--resume)
    GLIMPSE_FAULT_KILL="$1" "$MPIRUN" -np 2 "${MPI_ARGS[@]}" -x GLIMPSE_FAULT_KILL \
      "$TOOLS/train" "${ARGS[@]}" --out "$WORK/run" "${resume[@]}" >>"$WORK/run.log" 2>&1 &
    local pid=$!
    if [ -n "$2" ]; then
      sleep "$2"
      local ranks
      ranks=$(pgrep -P "$pid" | tr '\n' ' ')
      kill -9 "$pid" 2>/dev/null
      for _ in $(seq 1 200); do
        local alive=0
        for r in $ranks; do
          # Gone, or a zombie nobody reaps: either way no longer running.
          state=$(awk '{print $3}' "/proc/$r/stat" 2>/dev/null)
          [ -n "$state" ] && [ "$state" != Z ] && alive=1
        done
        [ $alive -eq 0 ] && break
        sleep 0.1
      done
      [ $alive -eq 0 ] || { echo "ranks $ranks outlived mpirun by 20 s" >&2; kill -9 $ranks 2>/dev/null; }
    fi
    wait "$pid"
    echo $?
  }
  kills=0
  # Deterministic points: every rank kills itself after its 3rd step of the attempt; rank 0
  # (the only writer) dies with a checkpoint written but not renamed, or renamed but not synced.
  history=""
  for fault in step:3 checkpoint-written:1 checkpoint-renamed:2 step:1; do
    rc=$(attempt "$fault" "")
    history+=" $fault=$rc"
    [ "$rc" -eq 0 ] && break
    kills=$((kills + 1))
  done
  [ "$kills" -ge 3 ] || fail "only $kills of the fault points were reached"
  # kill -9 on mpirun at whatever moment.
  for delay in 1.2 0.8 1.6 1.0 2.0; do
    rc=$(attempt "" "$delay")
    history+=" kill-after-${delay}s=$rc"
    [ "$rc" -eq 0 ] && break
    kills=$((kills + 1))
  done
  for _ in 1 2 3; do
    rc=$(attempt "" "")
    [ "$rc" -eq 0 ] && break
  done
  [ "$rc" -eq 0 ] || { tail -30 "$WORK/run.log"; fail "the resumed run did not finish (status $rc)"; }
  grep -q "resumed from" "$WORK/run.log" || fail "no run resumed"
  "$DIGEST" "$WORK/run/checkpoint.h5" >"$WORK/run.digest" || fail "digest of the resumed run"
  diff "$WORK/ref.digest" "$WORK/run.digest" >"$WORK/diff.txt" || {
    head -20 "$WORK/diff.txt"; fail "the killed-and-resumed 2-rank run's state differs from the uninterrupted one's"; }
  cut -d, -f1-5,7 "$WORK/ref/train_log.csv" >"$WORK/ref.rows"
  cut -d, -f1-5,7 "$WORK/run/train_log.csv" >"$WORK/run.rows"
  diff "$WORK/ref.rows" "$WORK/run.rows" >/dev/null || fail "the resumed run's log differs from the uninterrupted run's"
  echo "attempts (mpirun's exit status):$history; $(grep -c 'resumed from' "$WORK/run.log") resumes"
  echo "dist kill_resume: $kills kills, state bit-identical to the uninterrupted 2-rank run"
  ;;

uneven)
  "$TOOLS/train" "${TINY[@]}" --train-images 27 --epochs 1 --batch 4 --max-steps 0 --out "$WORK/gen" >"$WORK/gen.log" 2>&1 ||
    { cat "$WORK/gen.log"; fail "generating the dataset"; }
  # A COCO-format copy with 5 of its 27 training images unreadable: with one image per rank per
  # step, a rank's slice of some steps is empty while the other rank's is not; 27 images in
  # global batches of 2 leave one over, dropped on both ranks.
  cp -r "$WORK/data" "$WORK/coco"
  for n in 000002 000005 000006 000011 000019; do printf 'not a jpeg' >"$WORK/coco/images/train/$n.jpg"; done
  ARGS=(--data "$WORK/coco" --encoder tiny --freeze-encoder --image-size 64 --units 16 --vocab-size 64
        --max-len 24 --threads 1 --epochs 2 --batch 2 --seed 3)
  mpi 2 "$TOOLS/train" "${ARGS[@]}" --out "$WORK/two" >"$WORK/two.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || { tail -30 "$WORK/two.log"; fail "the uneven 2-rank run ended with status $rc"; }
  grep -q "done after" "$WORK/two.log" || fail "the uneven run did not finish"
  # Each rank had steps with nothing to train on (its only image unreadable), and went on.
  grep -q "rank 0: skipped .* unreadable image" "$WORK/two.log" || fail "rank 0 met no unreadable image"
  grep -q "rank 1: skipped .* unreadable image" "$WORK/two.log" || fail "rank 1 met no unreadable image"
  # The same data in one process: the same state up to rounding (so the empty slices
  # contributed nothing and the partial steps were weighted by their real tokens).
  "$TOOLS/train" "${ARGS[@]}" --out "$WORK/one" >"$WORK/one.log" 2>&1 || { tail -20 "$WORK/one.log"; fail "one process"; }
  "$COMPARE" "$WORK/one/checkpoint.h5" "$WORK/two/checkpoint.h5" 1e-4 || fail "uneven: 2 ranks differ from one process"
  # A global batch that does not divide among the ranks is refused before any work.
  mpi 2 "$TOOLS/train" "${ARGS[@]}" --batch 3 --out "$WORK/odd" >"$WORK/odd.log" 2>&1 &&
    fail "--batch 3 on 2 ranks was accepted"
  grep -q "must divide among the 2 ranks" "$WORK/odd.log" || fail "no clear message for --batch 3: $(tail -3 "$WORK/odd.log")"
  ;;

feature_cache)
  "$TOOLS/train" "${TINY[@]}" --train-images 23 --epochs 1 --batch 4 --max-steps 0 --out "$WORK/gen" >"$WORK/gen.log" 2>&1 ||
    { cat "$WORK/gen.log"; fail "generating the dataset"; }
  cp -r "$WORK/data" "$WORK/coco"
  printf 'not a jpeg' >"$WORK/coco/images/train/000004.jpg"
  # 23 training images plus the validation split, in rounds of 2 ranks x 3 images: the last
  # round is partial and a rank encodes nothing in it. One unreadable image: cached blank, exit 1.
  CACHE=(--data "$WORK/coco" --encoder tiny --image-size 64 --batch 3 --threads 1 --seed 4)
  "$TOOLS/cache_features" "${CACHE[@]}" --out "$WORK/one.h5" >"$WORK/one.log" 2>&1
  rc=$?
  [ $rc -eq 1 ] || { tail -20 "$WORK/one.log"; fail "one process: status $rc, expected 1 (an unreadable image)"; }
  mpi 2 "$TOOLS/cache_features" "${CACHE[@]}" --out "$WORK/two.h5" >"$WORK/two.log" 2>&1
  rc=$?
  [ $rc -eq 1 ] || { tail -20 "$WORK/two.log"; fail "2 ranks: status $rc, expected 1 (an unreadable image)"; }
  grep -q "on 2 ranks" "$WORK/two.log" || fail "the 2-rank run did not say it shared the work: $(head -5 "$WORK/two.log")"
  grep -q "^1 image(s) could not be read" "$WORK/two.log" || fail "the 2-rank run did not count the unreadable image once"
  # Bit for bit: the same encoder, the same images per encoder call, in the same order.
  echo "features and image ids, 1 process vs 2 ranks:"
  "$COMPARE" "$WORK/one.h5" "$WORK/two.h5" 0 || fail "the 2-rank cache differs from one process's"
  # A control: another seed (other encoder weights) must fail the comparison.
  "$TOOLS/cache_features" "${CACHE[@]}" --seed 5 --out "$WORK/other.h5" >/dev/null 2>&1
  "$COMPARE" "$WORK/one.h5" "$WORK/other.h5" 0 >/dev/null && fail "the comparison does not tell two encoders apart"
  # The 2-rank cache trains a 2-rank run (the cache's weights match the seed-4 encoder).
  mpi 2 "$TOOLS/train" --data "$WORK/coco" --encoder tiny --freeze-encoder --image-size 64 --units 16 --vocab-size 64 --max-len 24 \
    --threads 1 --epochs 1 --batch 4 --seed 4 --feature-cache "$WORK/two.h5" --out "$WORK/run" >"$WORK/run.log" 2>&1 ||
    { tail -20 "$WORK/run.log"; fail "2-rank training from the 2-rank cache"; }
  grep -q "done after" "$WORK/run.log" || fail "training from the cache did not finish"
  ;;

*)
  echo "unknown case $CASE"
  exit 2
  ;;
esac
echo "dist $CASE: PASS"
