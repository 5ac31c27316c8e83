#!/usr/bin/env bash
# Installs the Python packages that bench/ compares glimpse against (PyTorch, ONNX Runtime,
# TensorFlow/Keras), only those that are missing. Not needed by `make test` or `make demo`:
# the benchmark scripts skip a reference that is not installed and say so.
#   torch       : bench/*_torch.py, and the Inception-ResNet-v2 export for ONNX Runtime
#   onnx        : the exporter writes the model through it
#   onnxruntime : bench/inception_onnx.py
#   tensorflow  : bench/decoder_keras.py (Keras 3 ships with it)
set -euo pipefail
want=(torch onnx onnxruntime tensorflow)
missing=()
for m in "${want[@]}"; do
  python3 -c "import $m" 2>/dev/null || missing+=("$m")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-bench-deps: pip installing ${missing[*]}"
python3 -m pip install --quiet "${missing[@]}"
