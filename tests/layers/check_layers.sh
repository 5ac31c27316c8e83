#!/usr/bin/env bash
# The layering rule (issue 18; docs/tutorial.md): each folder includes only from itself and the
# folders below it,
#     tensor  <  cuda  <  nn  <  io, dist  <  models  <  tools
# (io and dist side by side, neither including the other). cuda/ sits above tensor/ because it
# implements tensor's kernel interface; tensor/ reaches it only through register_backend.
#
#   check_layers.sh SOURCE_DIR
# Prints every include that runs upward or sideways and exits 1 if there is one.
set -uo pipefail
SRC=$(realpath "$1")
declare -A RANK=([tensor]=0 [cuda]=1 [nn]=2 [io]=3 [dist]=3 [models]=4 [tools]=5)
bad=0
checked=0
for dir in "${!RANK[@]}"; do
  while IFS= read -r -d '' file; do
    checked=$((checked + 1))
    while IFS=: read -r line target; do
      [ -n "${RANK[$target]+x}" ] || continue
      if [ "${RANK[$target]}" -gt "${RANK[$dir]}" ] ||
         { [ "${RANK[$target]}" -eq "${RANK[$dir]}" ] && [ "$target" != "$dir" ]; }; then
        echo "FAIL ${file#"$SRC"/}:$line includes $target/ (layer $dir may include only lower layers)"
        bad=$((bad + 1))
      fi
    done < <(awk 'match($0, /^[ \t]*#[ \t]*include[ \t]*"[a-z_]+\//) {
                    target = substr($0, RSTART, RLENGTH); sub(/^.*"/, "", target); sub(/\/$/, "", target)
                    print FNR ":" target }' "$file")
  done < <(find "$SRC/$dir" -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc' \) -print0)
done
echo "checked the includes of $checked files"
[ "$bad" -eq 0 ]
