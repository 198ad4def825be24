#!/usr/bin/env bash
# Validate models/darknet2onnx.py against a real darknet (Debian's `darknet` package).
#
# usage: models/validate/run.sh [DIR]     (DIR as for models/fetch.sh; run fetch.sh first)
# needs: apt-get install darknet gcc   (libdarknet.so + darknet.h from the darknet package)
#
# Debian's darknet is pjreddie's 2018 tree, which cannot run yolov4-tiny as is (no grouped
# [route]); pjreddie_compat.py rewrites the cfg/weights into an equivalent network it can run.
# dn_dump.c then dumps darknet's letterboxed input, the raw conv outputs feeding each [yolo]
# layer and darknet's detections, and compare_darknet.py compares them with our ONNX.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
models="$(cd "$here/.." && pwd)"
dir="${1:-${OPENNVR_MODELS_DIR:-$models/dist}}"
cache="${OPENNVR_MODELS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge}"
src="$cache/extract/yolov4-tiny"
inc=/usr/lib/darknet/include
lib=/usr/lib/darknet
[ -f "$inc/darknet.h" ] && [ -f "$lib/libdarknet.so" ] || { echo "run.sh: install Debian's darknet package" >&2; exit 1; }
[ -f "$src/yolov4-tiny.weights" ] && [ -f "$dir/yolov4-tiny-416.onnx" ] || { echo "run.sh: run models/fetch.sh first" >&2; exit 1; }
vpy="$("$models/fetch.sh" --with-ort --print-python "$dir")"

work="${OPENNVR_VALIDATE_OUT:-$(mktemp -d)}"
mkdir -p "$work"
gcc -O2 -o "$work/dn_dump" "$here/dn_dump.c" -I"$inc" -L"$lib" -ldarknet -Wl,-rpath,"$lib" -lm

status=0
for s in 416 320; do
    "$vpy" "$here/pjreddie_compat.py" --cfg "$src/yolov4-tiny.cfg" --weights "$src/yolov4-tiny.weights" \
        --size "$s" --out-cfg "$work/pj$s.cfg" --out-weights "$work/pj$s.weights"
    "$vpy" "$models/darknet2onnx.py" --cfg "$src/yolov4-tiny.cfg" --weights "$src/yolov4-tiny.weights" \
        --size "$s" --out "$work/pjfold-$s.onnx" --bn-mode pjreddie
    for img in /usr/share/darknet/data/person.jpg "$dir/samples/bus.jpg"; do
        name="$(basename "$img" .jpg)-$s"
        mkdir -p "$work/$name"
        "$work/dn_dump" "$work/pj$s.cfg" "$work/pj$s.weights" "$img" 0.25 "$work/$name" \
            >"$work/$name/dets.jsonl" 2>"$work/$name/darknet.log"
        "$vpy" "$here/compare_darknet.py" --dump "$work/$name" --onnx "$dir/yolov4-tiny-$s.onnx" \
            --onnx-pj "$work/pjfold-$s.onnx" --image "$img" --report "$work/$name/report.json" || status=1
    done
done
echo "reports in $work"
exit $status
