#!/usr/bin/env bash
# Runs fuzz targets built by `make fuzz` (tests/fuzz/README.md) and prints what each found.
#
# Usage: run.sh BUILD_DIR TARGETS SECONDS MODE
#   TARGETS  "all", or target names separated by spaces or commas (jpeg png ...)
#   SECONDS  fuzzing time per target
#   MODE     explore  — HDF5 reads in-process (GLIMPSE_HDF5_SANDBOX=0), so a libhdf5 crash is
#                       reported where it happens, with its stack; -timeout=10 per input;
#            released — the library's defaults (the HDF5 sandbox on, its limit set to 5 s per
#                       file), i.e. what users run; -timeout=60 per input. Findings that the
#                       target survives when run again on their own (libhdf5 crashes inside the
#                       sandbox's reader process) go to findings/TARGET/contained/.
#
# Per target: the working corpus is BUILD_DIR/fuzz-corpus/TARGET (kept between runs, new inputs are
# added there), the seeds (seeds.sh) are copied to BUILD_DIR/fuzz-seeds/TARGET, findings
# (crash-*, timeout-*, oom-*, leak-*) land in BUILD_DIR/findings/TARGET/ and libFuzzer's output in
# BUILD_DIR/findings/TARGET.log. The table at the end is also written to
# BUILD_DIR/findings/summary.tsv. Exits with 1 when a target reported a finding or libFuzzer failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:?usage: run.sh BUILD_DIR TARGETS SECONDS MODE}" && pwd)"
targets="${2:-all}"
seconds="${3:-60}"
mode="${4:-explore}"
case "$mode" in explore|released) ;; *) echo "run.sh: MODE must be explore or released, got '$mode'" >&2; exit 2 ;; esac
[ "$targets" = all ] && targets="$(bash "$here/seeds.sh" --targets)"
targets="${targets//,/ }"

# The largest input each target is given. Image and text readers need little; HDF5 files need
# room for their headers and B-trees; the Keras target's seeds include the ~1.2 MB tiny-encoder
# weight files, which it must be able to read whole to reach the import itself.
max_len() {
  case "$1" in
    jpeg|png|image_file) echo 65536 ;;
    checkpoint|feature_cache) echo 131072 ;;
    captioner) echo 262144 ;;
    keras_weights) echo 1310720 ;;
    *) echo 4096 ;;
  esac
}

summary="$build/findings/summary.tsv"
mkdir -p "$build/findings"
printf 'target\tmode\tseconds\texecutions\tcorpus\tcrash\ttimeout\toom\tleak\tcontained\n' > "$summary"

# explore: HDF5 in-process. released: the defaults, with the sandbox's per-file limit well under
# libFuzzer's per-input one, which then has to cover a few sandboxed opens of one input (the
# checkpoint target opens its file three times).
if [ "$mode" = explore ]; then
  env_mode=(env GLIMPSE_HDF5_SANDBOX=0)
  input_timeout=10
else
  env_mode=(env -u GLIMPSE_HDF5_SANDBOX GLIMPSE_HDF5_SANDBOX_TIMEOUT=5)
  input_timeout=60
fi

status=0
for t in $targets; do
  bin="$build/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "run.sh: $bin not built (unknown target '$t'?)" >&2; exit 2; }
  corpus="$build/fuzz-corpus/$t"
  seeds="$build/fuzz-seeds/$t"
  findings="$build/findings/$t"
  tmp="$build/fuzz-tmp/$t"
  log="$build/findings/$t.log"
  rm -rf "$seeds" "$tmp"
  mkdir -p "$corpus" "$seeds" "$findings" "$tmp"
  while IFS= read -r f; do cp "$f" "$seeds/"; done < <(bash "$here/seeds.sh" "$t")
  list_findings() { find "$findings" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort; }
  before="$(list_findings)"

  echo "== fuzz_$t: $seconds s, $mode mode, log $log"
  # Fork mode keeps going past crashes, timeouts and OOMs, so one finding does not end the run.
  # TMPDIR: the targets' per-process input files and libFuzzer's job files stay in the build tree
  # (a crashing process cannot remove its own). One OpenMP thread: the readers compute little, and
  # the machines these run on are small. lsan.supp: libhdf5's own leaks on corrupt files would
  # otherwise end every job at once.
  run_env=("${env_mode[@]}" TMPDIR="$tmp" OMP_NUM_THREADS=1 LSAN_OPTIONS="suppressions=$here/lsan.supp")
  rc=0
  "${run_env[@]}" "$bin" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -print_funcs=0 \
      -max_total_time="$seconds" -timeout="$input_timeout" -rss_limit_mb=4096 -max_len="$(max_len "$t")" \
      -artifact_prefix="$findings/" "$corpus" "$seeds" > "$log" 2>&1 || rc=$?
  # The parent's status lines: "#EXECS: cov: C ft: F corp: N exec/s: E oom/timeout/crash: O/T/X ...".
  last="$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)"
  execs="$(sed -nE 's/^#([0-9]+):.*/\1/p' <<< "$last")"
  corp="$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<< "$last")"

  # In released mode the HDF5 sandbox's reader is a fork of the fuzzing process, with libFuzzer's
  # crash handlers: a libhdf5 crash there is reported (and written out) as if the target had
  # crashed, although the library turned it into a clean error. Each new finding is therefore run
  # once more on its own; those the target survives are moved to contained/.
  contained=0
  new_files="$(comm -13 <(echo "$before") <(list_findings))"
  if [ "$mode" = released ] && [ -n "$new_files" ]; then
    mkdir -p "$findings/contained"
    while IFS= read -r f; do
      if "${run_env[@]}" "$bin" -timeout="$input_timeout" -rss_limit_mb=4096 "$f" > /dev/null 2>&1; then
        mv "$f" "$findings/contained/"
        contained=$((contained + 1))
      fi
    done <<< "$new_files"
    new_files="$(comm -13 <(echo "$before") <(list_findings))"
  fi
  kinds=()
  for kind in crash timeout oom leak; do kinds+=("$(grep -c "/$kind-" <<< "$new_files" || true)"); done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$mode" "$seconds" "${execs:-?}" "${corp:-?}" \
      "${kinds[@]}" "$([ "$mode" = released ] && echo "$contained" || echo -)" >> "$summary"
  # Fork mode's exit status does not say whether something was found; the files do.
  found=$((kinds[0] + kinds[1] + kinds[2] + kinds[3]))
  if [ "$found" -gt 0 ]; then
    echo "   $found new finding(s) in $findings/"
    status=1
  elif [ "$rc" -ne 0 ] && [ "$contained" -eq 0 ]; then
    echo "   libFuzzer failed with exit status $rc (see $log)"
    status=1
  fi
  rm -rf "$tmp"
done

echo
echo "New findings per target (in $build/findings/<target>/; triage: tests/fuzz/README.md):"
column -t -s $'\t' "$summary" 2>/dev/null || cat "$summary"
exit "$status"
