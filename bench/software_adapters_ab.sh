#!/usr/bin/env bash
# The training step on each software Vulkan driver, same tree, alternating in one command:
# lavapipe from Mesa 22.3.6 and 25.0.7 (unpacked by scripts/mesa-ab.sh) and Chromium's SwiftShader.
#
#   bench/software_adapters_ab.sh [ROUNDS] [BATCH] [STEPS] [MESA_DIR] [all|lavapipe]
#   (defaults 2 128 5 /work/mesa all; `lavapipe`: the two lavapipe builds only)
#
# One JSON line per run (bench/step_ab.ts), prefixed with the adapter's label. SwiftShader gets the
# smallest register tiles: its shader compiler (Subzero) needs ~1 s per kernel at r4c4, ~15 s at
# r8c8, and passed 5 GB of memory without finishing the default r16c32 forward kernel (measured on
# the 2-core AMD EPYC), so the defaults cannot run there; lavapipe 25.0 is also timed with those
# tiles once per model so that the two drivers can be compared on the same kernels. Every run is
# killed past 8 GB of resident memory.
set -uo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}" batch="${2:-128}" steps="${3:-5}" mesa="${4:-/work/mesa}" which="${5:-all}"
small="fwd.r4c4v4,bwdData.r4c4v4,bwdFilter.r4c4v4s256"
export FMNIST_AUTOTUNE=off
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR"

lavapipe() { # version, then the command
  local v="$1"
  shift
  VK_ICD_FILENAMES="$mesa/$v/lvp_icd.json" LD_LIBRARY_PATH="$mesa/$v/usr/lib/x86_64-linux-gnu" "$@"
}
swiftshader() { VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json FMNIST_TILE_CONFIG="$small" "$@"; }

step() { # model: one JSON line; the run is killed when its resident memory passes 8 GB
  local out pid rss
  out="$(mktemp)"
  deno run -A bench/step_ab.ts "$batch" "$steps" "$1" >"$out" 2>/dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    rss="$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    if [ "${rss:-0}" -gt 8192 ]; then
      echo "{\"error\": \"killed at ${rss} MB resident\"}" >>"$out"
      kill "$pid"
    fi
    sleep 1
  done
  wait "$pid"
  grep '^{' "$out" | tail -1
  rm -f "$out"
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; deno $(deno --version | head -1 | cut -d' ' -f2)"
for round in $(seq 1 "$rounds"); do
  for model in baseline enhanced; do
    echo "lavapipe-22.3 r$round $(lavapipe 22.3 step "$model")"
    echo "lavapipe-25.0 r$round $(lavapipe 25.0 step "$model")"
    [ "$which" = lavapipe ] && continue
    echo "swiftshader r$round $(swiftshader step "$model")"
    if [ "$round" = 1 ]; then
      echo "lavapipe-25.0-small-tiles r$round $(FMNIST_TILE_CONFIG="$small" lavapipe 25.0 step "$model")"
    fi
  done
done
