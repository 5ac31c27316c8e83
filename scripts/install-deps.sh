#!/usr/bin/env bash
# Installs the system packages glimpse needs, only those that are missing (idempotent).
# Used by `make test`, `make demo` and CI, so a fresh Debian machine needs nothing by hand.
set -euo pipefail
# libopenmpi-dev + openmpi-bin: data-parallel training under mpirun (dist/, tests/dist/).
# libonnx-testdata: the ONNX backend node tests that tests/onnx/ runs on glimpse's ops (data only).
PKGS=(cmake g++ make libeigen3-dev libopenblas-openmp-dev doctest-dev libhdf5-dev libjpeg62-turbo-dev libpng-dev
      nlohmann-json3-dev libopenmpi-dev openmpi-bin libonnx-testdata)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing packages and no sudo; as root, run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
