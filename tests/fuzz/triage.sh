#!/usr/bin/env bash
# Replays each finding of `make fuzz` (BUILD_DIR/findings/TARGET/{crash,timeout,oom,leak}-*) in-process
# (GLIMPSE_HDF5_SANDBOX=0) and prints one line per finding: its kind, the first frames of the
# stack outside the sanitizer and libFuzzer runtimes, and the first frame in glimpse's own code.
# Findings with the same frames are the same bug: minimize one of them (README.md, "Triage").
#
# Usage: triage.sh BUILD_DIR [TARGET...]   (default: every target with findings)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:?usage: triage.sh BUILD_DIR [TARGET...]}" && pwd)"
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in "$build"/findings/*/; do targets+=("$(basename "$d")"); done
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for t in "${targets[@]}"; do
  for f in "$build/findings/$t"/{crash,timeout,oom,leak}-*; do
    [ -f "$f" ] || continue
    out="$(TMPDIR="$tmp" GLIMPSE_HDF5_SANDBOX=0 OMP_NUM_THREADS=1 LSAN_OPTIONS="suppressions=$here/lsan.supp" \
           timeout 120 "$build/tests/fuzz/fuzz_$t" -timeout=10 -rss_limit_mb=4096 "$f" 2>&1)"
    kind="$(grep -m1 -oE 'ERROR: (AddressSanitizer: [a-zA-Z-]+|LeakSanitizer|libFuzzer: [a-z-]+)|runtime error: .*|fuzz invariant failed: .*' <<< "$out")"
    [ -n "$kind" ] || kind="no longer reproduces"
    # Frames: "#N 0x... in FUNCTION(ARGS) FILE:LINE" or "#N 0x... (MODULE+0xOFFSET)": keep the
    # function (without arguments) and where it is, skipping the runtimes' own frames.
    frames="$(grep -E '^ +#[0-9]+ ' <<< "$out" |
              grep -vE '__sanitizer|__asan|__interceptor|fuzzer::|libc\.so|__libc_start|_start |AlarmCallback|StaticTimeoutCallback' |
              sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ //; s/ \(BuildId[^)]*\)//; s/\(anonymous namespace\)/{anon}/g; s/\[abi:cxx11\]//g' |
              sed -E 's/^in ([^(]*)\(.*\)( const)? (\/[^ ]*)$/\1 \3/; s/^in ([^ (]*).*\((\/[^)]*)\)$/\1 (\2)/; s/^\(([^)]*)\)$/\1/; s/\((\/[^)]*\/)?(lib[^/)]*)\)/(\2)/; s/^\/.*\/(lib[^/]*)$/\1/; s/ \/[^ ]*\/(io|models|nn|tensor|tests)\// \1\//')"
    top="$(head -n 3 <<< "$frames" | paste -sd '|' | sed 's/|/ < /g')"
    ours="$(grep -m1 -E 'glimpse::' <<< "$frames")"
    printf '%s\t%s\t%s\ttop: %s\tglimpse: %s\n' "$t" "$(basename "$f")" "$kind" "$top" "${ours:-none}"
  done
done
