#!/usr/bin/env bash
# One command for whoever is lent a GPU machine (BENCHMARKS.md, "Running on a GPU machine"):
#
#   bash scripts/gpu-check.sh OUTDIR [--budget full|tiny] [--bundle DIR] [--allow-software]
#
# Steps, each under its own time limit, all of them within 8 minutes on a GPU (--budget full):
#   1. Vulkan: the loader from the bundle's .debs when the system has none; the NVIDIA ICD.
#   2. Adapter check: the start-up line must name a hardware adapter (--adapter hardware stops
#      with exit 2 on llvmpipe); the roofline suite, --quick.
#   3. Autotune: bench --suite autotune fills the cache for the enhanced and baseline CNNs'
#      layers at batch 32..512 and the evaluation batch; the table of choices, every candidate's
#      time.
#   4. Benchmarks: bench --suite all (roofline, kernels, train) with the tuned tile configs.
#   5. Profile of a training step at batch 256 (Chrome trace).
#   6. Training: enhanced, 3 epochs on all 60,000 images, then evaluation on the test set.
# OUTDIR receives at most 8 files (what a device run brings back): gpu-check.log (everything
# printed), summary.md (step table, autotune table, benchmark tables, training result),
# autotune.json and bench.json (bench documents), autotune-cache.json (the tuned choices, reusable
# via FMNIST_AUTOTUNE_CACHE), trace.json, train-metrics.json and train-run.tar.gz (the run folder).
#
# The bundle (scripts/gpu-prepare.sh builds it, default .gpu/): fmnist (the compiled program),
# data/fashion-mnist/*.gz, debs/libvulkan1_*.deb. FMNIST_BIN overrides the program (e.g.
# FMNIST_BIN="deno run -A src/main.ts" in a checkout, as the test does). --budget tiny runs every
# step on tiny shapes (seconds on llvmpipe) and --allow-software accepts a software adapter: the
# end-to-end test of this script on a machine without a GPU.
#
# Exit status: 0 when every step passed, 2 when the adapter check failed (nothing else ran), 1
# when a later step failed or ran out of time (the others still ran; summary.md says which).

set -uo pipefail

usage() {
  echo "usage: $0 OUTDIR [--budget full|tiny] [--bundle DIR] [--allow-software]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
OUTDIR=$1
shift
BUDGET=full
BUNDLE=.gpu
ADAPTER=hardware
while [ $# -gt 0 ]; do
  case $1 in
  --budget)
    [ $# -ge 2 ] || usage
    BUDGET=$2
    shift 2
    ;;
  --bundle)
    [ $# -ge 2 ] || usage
    BUNDLE=$2
    shift 2
    ;;
  --allow-software)
    ADAPTER=any
    shift
    ;;
  *)
    echo "gpu-check: unknown argument '$1'" >&2
    usage
    ;;
  esac
done
case $BUDGET in full | tiny) ;; *)
  echo "gpu-check: --budget must be full or tiny, got '$BUDGET'" >&2
  exit 2
  ;;
esac

mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
LOG=$OUTDIR/gpu-check.log
: >"$LOG"
START=$(date +%s)
STEPS=()
STATUS=0

log() { echo "gpu-check: $*" | tee -a "$LOG"; }

# run_step NAME LIMIT_S CMD...: runs CMD under its limit, cut to what is left of the whole
# budget (DEADLINE), output into the log; records the result for summary.md.
run_step() {
  local name=$1 limit=$2
  shift 2
  local t0 rc left
  t0=$(date +%s)
  left=$((DEADLINE - t0))
  if [ "$left" -lt 15 ]; then
    STEPS+=("| $name | skipped: the ${BUDGET_S}s budget is spent | 0 |")
    log "--- $name: skipped, the ${BUDGET_S}s budget is spent"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "--- $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0))
  local what=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    what="timeout after ${limit}s"
  elif [ "$rc" -ne 0 ]; then
    what="failed (exit $rc)"
  fi
  STEPS+=("| $name | $what | $dt |")
  log "--- $name: $what in ${dt}s"
  return "$rc"
}

# --- 1. Environment: program, Vulkan loader, ICD -------------------------------------------------

export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export HOME=${HOME:-/tmp}
export FMNIST_HOME=${FMNIST_HOME:-$WORK/fmnist-home} # where the launcher unpacks itself
export DENO_DIR=${DENO_DIR:-$WORK/deno-dir}
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
# The cache (and the lock file beside it, src/shared_json_file.ts) live in the scratch folder;
# the cache is copied into OUTDIR at the end, which holds result files only.
export FMNIST_AUTOTUNE_CACHE=$WORK/autotune-cache.json
# Tune even if the caller's environment says otherwise: filling the cache is the point here.
export FMNIST_AUTOTUNE=on

if [ -n "${FMNIST_BIN:-}" ]; then
  read -r -a FMNIST <<<"$FMNIST_BIN"
elif [ -x "$BUNDLE/fmnist" ]; then
  FMNIST=("$(cd "$BUNDLE" && pwd)/fmnist")
else
  log "no program: $BUNDLE/fmnist is missing (run scripts/gpu-prepare.sh first) and FMNIST_BIN is unset"
  exit 2
fi

log "start $(date -u +%FT%TZ), budget $BUDGET, adapter policy $ADAPTER, program ${FMNIST[*]}"
log "host: $(uname -srm), $(nproc) CPUs"
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"

if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  log "Vulkan loader: found on the system"
else
  debs=("$BUNDLE"/debs/*.deb)
  if [ -e "${debs[0]}" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      # The device machines' notes: unpack the loader into / and refresh the linker cache.
      for f in "${debs[@]}"; do dpkg -x "$f" / && log "unpacked $(basename "$f") into /"; done
      ldconfig
    else
      for f in "${debs[@]}"; do dpkg -x "$f" "$WORK/vk" && log "unpacked $(basename "$f") into $WORK/vk"; done
      export LD_LIBRARY_PATH=$WORK/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
  else
    log "Vulkan loader: none on the system and no .deb in $BUNDLE/debs (WebGPU will find no adapter)"
  fi
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for p in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$p" ]; then
      export VK_DRIVER_FILES=$p
      break
    fi
  done
fi
log "Vulkan ICD: ${VK_DRIVER_FILES:-none set, the loader searches its default paths}"

DATA=()
[ -d "$BUNDLE/data/fashion-mnist" ] && DATA=(--data "$(cd "$BUNDLE/data/fashion-mnist" && pwd)")

# Per-step limits (adapter, autotune, bench, profile, train) guard against a hang; the whole
# run stops at BUDGET_S (full: 8 minutes minus a margin for the device run's start and copy).
if [ "$BUDGET" = full ]; then
  BUDGET_S=450
  # --no-cpu: the tfjs CPU backend needs minutes per backward case (BENCHMARKS.md, run A).
  BENCH_OPTS=(--no-cpu)
  LIMITS=(90 120 150 45 180)
  PROFILE=(--batch 256 --steps 3)
  TRAIN=(--epochs 3)
else
  BUDGET_S=900
  BENCH_OPTS=(--quick --no-cpu)
  LIMITS=(120 180 300 120 300)
  PROFILE=(--batch 4 --steps 1 --no-compare --repeats 1)
  TRAIN=(--epochs 1 --limit 128 --batch 32 --eval-limit 64)
fi
DEADLINE=$((START + BUDGET_S))

# --- 2. Adapter check ----------------------------------------------------------------------------

if ! run_step "adapter check" "${LIMITS[0]}" "${FMNIST[@]}" bench --adapter "$ADAPTER" \
  --suite roofline --quick; then
  log "the adapter check failed: see above (software adapter? no Vulkan ICD?). Stopping."
  STATUS=2
fi
ADAPTER_LINE=$(grep -m1 '^bench: webgpu on ' "$LOG" | sed 's/^bench: //')

if [ "$STATUS" -eq 0 ]; then
  # --- 3. Autotune -------------------------------------------------------------------------------
  run_step "autotune" "${LIMITS[1]}" "${FMNIST[@]}" bench --adapter "$ADAPTER" --suite autotune \
    --models enhanced,baseline "${BENCH_OPTS[@]}" --json "$OUTDIR/autotune.json" \
    --markdown "$WORK/autotune.md" || STATUS=1

  # --- 4. Kernel and train suites (and the roofline, for the % columns) --------------------------
  run_step "bench kernels+train" "${LIMITS[2]}" "${FMNIST[@]}" bench --adapter "$ADAPTER" \
    --suite all "${BENCH_OPTS[@]}" --json "$OUTDIR/bench.json" --markdown "$WORK/bench.md" || STATUS=1

  # --- 5. Profile --------------------------------------------------------------------------------
  run_step "profile" "${LIMITS[3]}" "${FMNIST[@]}" profile --adapter "$ADAPTER" "${PROFILE[@]}" \
    --trace "$OUTDIR/trace.json" || STATUS=1

  # --- 6. Training with evaluation ---------------------------------------------------------------
  RUN=$WORK/run-enhanced
  if run_step "train enhanced" "${LIMITS[4]}" "${FMNIST[@]}" train --adapter "$ADAPTER" \
    --model enhanced "${TRAIN[@]}" "${DATA[@]}" --out "$RUN" --quiet; then
    [ -f "$RUN/metrics.json" ] && cp "$RUN/metrics.json" "$OUTDIR/train-metrics.json"
  else
    STATUS=1
  fi
  # History, plots, report and the best checkpoint as one file (a device run brings back at most
  # 8, each under 16 MiB; the last checkpoint's 5.6 MB of weights stay behind).
  [ -d "$RUN" ] && tar -C "$WORK" --exclude=run-enhanced/checkpoints/last/weights.bin \
    -czf "$OUTDIR/train-run.tar.gz" run-enhanced
fi

# --- Summary -------------------------------------------------------------------------------------

TOTAL=$(($(date +%s) - START))
{
  echo "# GPU check"
  echo
  echo "Date: $(date -u +%FT%TZ); adapter: ${ADAPTER_LINE:-unknown}; budget: $BUDGET;" \
    "total ${TOTAL} s; exit status $STATUS."
  echo
  echo "| step | result | seconds |"
  echo "| --- | --- | ---: |"
  printf '%s\n' "${STEPS[@]}"
  for part in "autotune:Autotune" "bench:Benchmarks"; do
    if [ -f "$WORK/${part%%:*}.md" ]; then
      echo
      echo "## ${part#*:}"
      echo
      cat "$WORK/${part%%:*}.md"
    fi
  done
  echo
  echo "## Host side of a step (profile)"
  echo
  echo '```'
  grep -E '^(profile: |dispatches per step|host time to issue|main-thread CPU|captured)' "$LOG" |
    tail -n 9
  echo '```'
  echo
  echo "## Training"
  echo
  echo '```'
  grep -E '^(train: |autotune: |software adapter|step capture|best validation|test accuracy|epoch )' "$LOG" |
    grep -v -- '^gpu-check' | tail -n 40
  echo '```'
} >"$OUTDIR/summary.md"
[ -f "$FMNIST_AUTOTUNE_CACHE" ] && cp "$FMNIST_AUTOTUNE_CACHE" "$OUTDIR/autotune-cache.json"
FILES=$(cd "$OUTDIR" && ls | tr '\n' ' ')
log "wrote ${FILES}in $OUTDIR (${TOTAL}s, exit $STATUS)"
rm -rf "$WORK"
exit "$STATUS"
