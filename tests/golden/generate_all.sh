#!/usr/bin/env bash
# Regenerates every golden fixture under tests/data/ by running each tests/golden/gen_*.py.
# Uses whatever python3 is on PATH (no virtual environment); installs requirements.txt only when
# the packages the generators import are missing.
#
#   tests/golden/generate_all.sh            # generate
#   PYTHON=python3.11 tests/golden/generate_all.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export KERAS_BACKEND=tensorflow

if ! "$python" -c "import tensorflow, tf_keras, keras, h5py, numpy, PIL, pycocoevalcap" >/dev/null 2>&1; then
    echo "generate_all.sh: generator packages missing; installing $here/requirements.txt"
    "$python" -m pip install -r "$here/requirements.txt"
fi

shopt -s nullglob
generators=("$here"/gen_*.py)
if [ ${#generators[@]} -eq 0 ]; then
    echo "generate_all.sh: no gen_*.py found in $here" >&2
    exit 1
fi

failed=()
for generator in "${generators[@]}"; do
    echo "=== $(basename "$generator")"
    if ! "$python" "$generator"; then
        failed+=("$(basename "$generator")")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "generate_all.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "generate_all.sh: all ${#generators[@]} generators succeeded"
