#!/usr/bin/env bash
# Builds everything a GPU machine run needs into one git-ignored folder, then prints the exact
# device run (command, carry list, time limit) for scripts/gpu-check.sh.
#
#   bash scripts/gpu-prepare.sh [DIR]        (default .gpu; must be ignored by git)
#
# DIR/fmnist                    the program (`deno task compile`: deno compile, or a
#                               self-extracting launcher where denort cannot be downloaded)
# DIR/data/fashion-mnist/*.gz   the four dataset files (training needs all: about 30 MB)
# DIR/debs/libvulkan1_*.deb     the Vulkan loader for amd64 (the lent machines have none)
# The GPU machine has no network and no Deno; a run carries at most 64 MiB with the working
# tree, which this script checks.

set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${1:-.gpu}
LIMIT=$((64 * 1024 * 1024))

say() { echo "gpu-prepare: $*"; }
die() {
  echo "gpu-prepare: error: $*" >&2
  exit 1
}

case $DIR in /* | ../*) die "DIR must be inside the repository (the device run carries it): $DIR" ;; esac
mkdir -p "$DIR/data/fashion-mnist" "$DIR/debs"
if ! git check-ignore -q "$DIR"; then
  die "$DIR is not ignored by git: add /$DIR/ to .gitignore or .git/info/exclude (else it travels as untracked files and cannot be carried)"
fi

# 1. The program.
deno task compile --out "$DIR/fmnist"

# 2. The dataset, from where the loader would look (src/data/fashion_mnist.ts).
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
SRC=""
for d in "${FASHION_MNIST_DIR:-}" data/fashion-mnist /usr/share/datasets/fashion-mnist; do
  [ -n "$d" ] || continue
  ok=1
  for f in "${FILES[@]}"; do [ -f "$d/$f.gz" ] || [ -f "$d/$f" ] || ok=0; done
  if [ "$ok" -eq 1 ]; then
    SRC=$d
    break
  fi
done
[ -n "$SRC" ] || die "no Fashion-MNIST folder with all four files (set FASHION_MNIST_DIR, or install Debian's dataset-fashion-mnist)"
for f in "${FILES[@]}"; do
  if [ -f "$SRC/$f.gz" ]; then
    cp "$SRC/$f.gz" "$DIR/data/fashion-mnist/"
  else
    gzip -9 -c "$SRC/$f" >"$DIR/data/fashion-mnist/$f.gz"
  fi
done
say "dataset from $SRC"

# 3. The Vulkan loader (amd64, whatever this machine is), kept when already downloaded.
if ! ls "$DIR"/debs/libvulkan1_*_amd64.deb >/dev/null 2>&1; then
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oAPT::Sandbox::User=root
    "-oDir::State::Lists=$lists"
    "-oDir::Cache=$lists/cache")
  if apt-get "${o[@]}" -qq update && (cd "$DIR/debs" && apt-get "${o[@]}" -qq download libvulkan1:amd64); then
    say "downloaded $(cd "$DIR/debs" && ls libvulkan1_*.deb)"
  elif ls .gl/libvulkan1_*_amd64.deb >/dev/null 2>&1; then
    cp .gl/libvulkan1_*_amd64.deb "$DIR/debs/"
    say "apt-get download failed; copied the loader from .gl/"
  else
    die "could not download libvulkan1 (apt-get download libvulkan1:amd64) and no copy in .gl/"
  fi
  rm -rf "$lists"
fi

# 4. What the run carries: the working tree (tracked + untracked files git does not ignore) + DIR.
tree=$(git ls-files -z -c -o --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null |
  awk '{s += $1} END {print s + 0}')
bundle=$(du -sb "$DIR" | cut -f1)
total=$((tree + bundle))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
say "bundle $DIR: $(mib "$bundle") (program $(mib "$(stat -c %s "$DIR/fmnist")"), data" \
  "$(mib "$(du -sb "$DIR/data" | cut -f1)"), debs $(mib "$(du -sb "$DIR/debs" | cut -f1)"));" \
  "working tree $(mib "$tree"); total $(mib "$total") of the 64 MiB a run carries"
[ "$total" -le "$LIMIT" ] || die "the run would carry $(mib "$total"), over 64 MiB"

cat <<EOF

Ready. On a lent GPU machine, one call of the device tool's run (about 8 minutes):
  command:   bash scripts/gpu-check.sh \$OUT --bundle $DIR
  carry:     ["$DIR"]
  timeout_s: 600
Results come back in \$OUT (at most 8 files): summary.md, gpu-check.log, autotune.json,
bench.json, autotune-cache.json, trace.json, train-metrics.json, train-run.tar.gz.
Try it here first (software adapter, tiny shapes, about 2 minutes on 2 cores):
  bash scripts/gpu-check.sh /tmp/gpu-check --bundle $DIR --budget tiny --allow-software
EOF
