#!/usr/bin/env bash
# Unpacks two Mesa lavapipe builds side by side, without installing either, so that one process can be
# pointed at either one: Debian 12's own Mesa 22.3.6 and bookworm-backports' 25.0.7. Each folder gets
# the driver, the libdrm it was built against, and an ICD manifest whose library_path points into the
# folder. Prints the environment that selects each one.
#
#   scripts/mesa-ab.sh [DEST]          DEST defaults to /work/mesa (folders DEST/22.3, DEST/25.0)
#
# Needs a Debian 12 machine with bookworm-backports in its apt sources (.ci/run adds it) and write
# access to DEST; apt-get download and dpkg -x need no root.
set -euo pipefail

dest="${1:-/work/mesa}"
declare -A mesa=([22.3]="22.3.6-1+deb12u2" [25.0]="25.0.7-2~bpo12+1")
declare -A drm=([22.3]="2.4.114-1+b1" [25.0]="2.4.123-1~bpo12+1")

for v in 22.3 25.0; do
  dir="$dest/$v"
  debs="$(mktemp -d)"
  (
    cd "$debs"
    apt-get download -q "mesa-vulkan-drivers=${mesa[$v]}" "libdrm2=${drm[$v]}" \
      "libdrm-amdgpu1=${drm[$v]}" 2>&1 | grep -v 'unsandboxed' || true
  )
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$dir.tmp"; done
  rm -rf "$debs"
  lib="$dir/usr/lib/x86_64-linux-gnu"
  # The manifest names the driver by absolute path (22.3) or bare name (25.0); point it at this
  # folder's copy. Its file name also differs (lvp_icd.x86_64.json, lvp_icd.json).
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
    "$dir.tmp"/usr/share/vulkan/icd.d/lvp_icd*.json >"$dir.tmp/lvp_icd.json"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "Mesa ${mesa[$v]}: VK_ICD_FILENAMES=$dir/lvp_icd.json LD_LIBRARY_PATH=$lib"
done
