#!/usr/bin/env bash
# The training step of two source trees on lavapipe with the CPU's native code generation and with
# AVX-512 masked off (GALLIUM_OVERRIDE_CPU_CAPS=avx: Mesa's util/u_cpu_detect.c clears every
# AVX-512 cap and keeps AVX2/FMA, so LLVM emits AVX2 code with 16 vector registers, the code an
# AVX2-only CPU gets), alternating in one command.
#
#   bench/cpu_caps_ab.sh OLD_TREE [ROUNDS] [BATCH] [STEPS] [MESA_DIR] [MODELS]
#   (defaults 2 128 3 /work/mesa "baseline enhanced")
#
# One JSON line per run (bench/step_ab.ts, which OLD_TREE's bench/ must hold too), prefixed with
# Mesa release, code generation and tree.
set -uo pipefail
cd "$(dirname "$0")/.."
old="$1" rounds="${2:-2}" batch="${3:-128}" steps="${4:-3}" mesa="${5:-/work/mesa}"
models="${6:-baseline enhanced}"
export FMNIST_AUTOTUNE=off
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR"
new="$(pwd)"

run() { # mesa version, caps (native|avx), tree, model
  local caps=()
  [ "$2" = native ] || caps=(GALLIUM_OVERRIDE_CPU_CAPS="$2")
  (cd "$3" && env VK_ICD_FILENAMES="$mesa/$1/lvp_icd.json" \
    LD_LIBRARY_PATH="$mesa/$1/usr/lib/x86_64-linux-gnu" "${caps[@]}" \
    deno run -A bench/step_ab.ts "$batch" "$steps" "$4" 2>/dev/null | grep '^{' | tail -1)
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; deno $(deno --version | head -1 | cut -d' ' -f2)"
for round in $(seq 1 "$rounds"); do
  for v in 22.3 25.0; do
    for caps in native avx; do
      for model in $models; do
        for tree in "$new" "$old"; do
          echo "mesa-$v $caps $(basename "$tree") r$round $(run "$v" "$caps" "$tree" "$model")"
        done
      done
    done
  done
done
