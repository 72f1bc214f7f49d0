#!/usr/bin/env bash
# The training step of this tree against another revision, back to back in one command, on each
# lavapipe build that scripts/mesa-ab.sh unpacked (the figures BENCHMARKS.md's "Today" table gives).
#
#   bench/tree_ab.sh OLD_REV [ROUNDS] [BATCH] [STEPS] [MESA_DIR] [MODELS]
#   (defaults: 2 rounds, batch 128, 5 steps, /work/mesa, "baseline enhanced")
#
# OLD_REV is checked out into a temporary worktree (with its own `deno install`), bench/step_ab.ts
# is copied into it, and for every Mesa build, model and round the old tree and this one run one
# after the other. One line per run: mesa, model, tree, then step_ab.ts's JSON (median wall, issue
# and process CPU time per step). FMNIST_AUTOTUNE=off: both trees use their built-in tile configs.
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev="${1:?usage: bench/tree_ab.sh OLD_REV [ROUNDS] [BATCH] [STEPS] [MESA_DIR] [MODELS]}"
rounds="${2:-2}" batch="${3:-128}" steps="${4:-5}" mesa="${5:-/work/mesa}"
models="${6:-baseline enhanced}"
export FMNIST_AUTOTUNE=off
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR"

old="$(mktemp -d "${TMPDIR:-/tmp}/tree-ab.XXXXXX")"
trap 'git worktree remove --force "$old" >/dev/null 2>&1 || rm -rf "$old"' EXIT
git worktree add --detach -q "$old" "$old_rev"
cp bench/step_ab.ts "$old/bench/step_ab.ts"
(cd "$old" && deno install --frozen >/dev/null 2>&1)

versions=()
for d in "$mesa"/*/; do [ -f "$d/lvp_icd.json" ] && versions+=("$(basename "$d")"); done
[ "${#versions[@]}" -gt 0 ] || versions=(system)

run() { # mesa version, model, label, tree
  local v="$1" model="$2" label="$3" tree="$4" line
  if [ "$v" = system ]; then
    line="$(cd "$tree" && deno run -A bench/step_ab.ts "$batch" "$steps" "$model" 2>/dev/null | tail -n 1)"
  else
    line="$(cd "$tree" && VK_ICD_FILENAMES="$mesa/$v/lvp_icd.json" \
      LD_LIBRARY_PATH="$mesa/$v/usr/lib/x86_64-linux-gnu" \
      deno run -A bench/step_ab.ts "$batch" "$steps" "$model" 2>/dev/null | tail -n 1)"
  fi
  echo "mesa=$v model=$model tree=$label $line"
}

for v in "${versions[@]}"; do
  for model in $models; do
    for ((r = 1; r <= rounds; r++)); do
      run "$v" "$model" "$old_rev" "$old"
      run "$v" "$model" "now" "."
    done
  done
done
