#!/usr/bin/env bash
# Installs what `make fuzz` needs on top of scripts/install-deps.sh, only what is missing
# (idempotent): clang with libFuzzer and the sanitizer runtimes, and LLVM's OpenMP runtime
# (the CPU backend uses OpenMP, and clang does not use GCC's libgomp). Kept apart from
# install-deps.sh so that `make test` and `make demo` never need clang.
set -euo pipefail
PKGS=(clang libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-fuzz-deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
