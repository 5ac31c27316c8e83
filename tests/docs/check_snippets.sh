#!/usr/bin/env bash
# Docs that cannot go stale (issue 18): every ```cpp block of README.md, docs/*.md and
# examples/README.md is compiled against the real headers (g++ -fsyntax-only), or, when it quotes
# the code, found in the file it quotes.
#
#   check_snippets.sh SOURCE_DIR CXX
#
# How a block is compiled: its #include and using lines go first, at file scope; the rest becomes
# the body of a function — unless the block defines things at file scope itself (a TEST_CASE, a
# function), which the line before its fence says with one of these HTML comments (invisible
# when the Markdown is rendered):
#   <!-- snippet: file-scope -->          the block is a whole translation unit
#   <!-- snippet: continues -->           the block goes on from the previous block of the page
#                                         (same function: it may use the earlier variables)
#   <!-- snippet: quotes PATH -->         the block is a quotation of PATH: each of its non-blank
#                                         lines must appear in PATH, in order
# Exit status: 0 when every block passes, 1 otherwise (each failure is printed with its compiler
# messages).
set -uo pipefail
SRC=$(realpath "$1")
CXX=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FLAGS=(-std=c++20 -fsyntax-only -Wall -Wextra -Wno-unused-variable -Wno-unused-but-set-variable
       -I"$SRC" -I"$SRC/include" -I"$SRC/tests" -I/usr/include/eigen3 -fopenmp)

failed=0
checked=0
for doc in "$SRC"/README.md "$SRC"/docs/*.md "$SRC"/examples/README.md; do
  [ -f "$doc" ] || continue
  rel=${doc#"$SRC"/}
  # Split the page into blocks: block N's code in $WORK/b.N, its mode in $WORK/b.N.mode, its line.
  rm -f "$WORK"/b.*
  awk -v out="$WORK/b" '
    /^<!-- snippet: .* -->$/ { mode = $0; sub(/^<!-- snippet: /, "", mode); sub(/ -->$/, "", mode); next }
    /^```cpp[[:space:]]*$/ { n++; inside = 1; print (mode == "" ? "function" : mode) > (out "." n ".mode");
                             print FNR > (out "." n ".line"); mode = ""; printf "" > (out "." n); next }
    /^```/ { if (inside) { inside = 0; close(out "." n) } ; mode = ""; next }
    inside { print >> (out "." n) ; next }
    NF { mode = "" }' "$doc"
  n=1
  body_prefix=""
  while [ -f "$WORK/b.$n" ]; do
    mode=$(cat "$WORK/b.$n.mode")
    line=$(cat "$WORK/b.$n.line")
    checked=$((checked + 1))
    case "$mode" in
    quotes\ *)
      path=${mode#quotes }
      # Each non-blank line, whitespace-trimmed, in order in the quoted file.
      if ! awk -v snippet="$WORK/b.$n" '
          function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
          BEGIN { while ((getline l < snippet) > 0) { l = trim(l); if (l != "") want[++m] = l }; k = 1 }
          { if (k <= m && trim($0) == want[k]) k++ }
          END { if (k <= m) { print "  not found in order: " want[k]; exit 1 } }' "$SRC/$path"; then
        echo "FAIL $rel:$line: the quoted lines are not in $path"
        failed=$((failed + 1))
      fi
      ;;
    file-scope)
      cp "$WORK/b.$n" "$WORK/unit.cpp"
      ;;
    function | continues)
      [ "$mode" = continues ] || body_prefix=""
      grep -E '^[[:space:]]*(#include|using )' "$WORK/b.$n" >>"$WORK/head.$n"
      grep -vE '^[[:space:]]*(#include|using )' "$WORK/b.$n" >"$WORK/body.$n"
      # A continued block keeps the includes and the body of the blocks before it.
      if [ "$mode" = continues ] && [ $n -gt 1 ]; then cat "$WORK/head.$((n - 1))" >>"$WORK/head.$n"; fi
      { cat "$WORK/head.$n"; echo "void glimpse_docs_snippet() {"; printf '%s' "$body_prefix"; cat "$WORK/body.$n"; echo "}"; } >"$WORK/unit.cpp"
      body_prefix="$body_prefix$(cat "$WORK/body.$n")
"
      ;;
    *)
      echo "FAIL $rel:$line: unknown snippet mode '$mode'"
      failed=$((failed + 1))
      n=$((n + 1))
      continue
      ;;
    esac
    if [ "${mode%% *}" != quotes ]; then
      if ! "$CXX" "${FLAGS[@]}" -x c++ "$WORK/unit.cpp" >"$WORK/log" 2>&1; then
        echo "FAIL $rel:$line: does not compile against the headers"
        sed 's/^/  /' "$WORK/log" | head -20
        failed=$((failed + 1))
      fi
    fi
    n=$((n + 1))
  done
  rm -f "$WORK"/head.* "$WORK"/body.*
done
echo "$checked snippets checked, $failed failed"
[ "$checked" -gt 0 ] || { echo "FAIL: no snippet found"; exit 1; }
[ "$failed" -eq 0 ]
