#!/usr/bin/env bash
# Detector latency on our two CPU runtimes (tract, and onnxruntime through our backend) beside
# onnxruntime's own Python binding, same ONNX files and image, one run.
# usage: models/bench.sh [IMAGE] [ITERS]    (prints a markdown table for docs/performance.md)
# Run on a quiet machine: the load average before and after is printed with the table.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${OPENNVR_MODELS_DIR:-$root/models/dist}
image=${1:-$dir/samples/bus.jpg}
iters=${2:-30}
py=$("$root/models/fetch.sh" --with-ort --print-python)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
(cd "$root" && OPENNVR_MODELS_DIR=$dir cargo bench --quiet --bench detector -- --iters "$iters" --image "$image") >"$out/tract.jsonl"
for size in 320 416; do
  for threads in 1 2; do
    "$py" "$root/models/bench_ort.py" --model "$dir/yolov4-tiny-$size.onnx" --image "$image" \
      --threads "$threads" --iters "$iters" >"$out/ort-$size-$threads.json"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$py" - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "tract.jsonl")) if l.strip()]
ours = {(r["size"], r["threads"]): r for r in rows if r["runtime"] == "onnxruntime"}
cpu = "?"
print("| input | threads | tract model ms (median / p90) | our onnxruntime backend ms | onnxruntime (Python) ms | tract / ort | tract end-to-end ms | ours on onnxruntime end-to-end ms | ort pre + infer + decode ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for t in (r for r in rows if r["runtime"] == "tract"):
    o = json.load(open(os.path.join(out, f"ort-{t['size']}-{t['threads']}.json")))
    u = ours[(t["size"], t["threads"])]
    cpu = o["cpu"]
    ort_e2e = o["preprocess_ms"]["median"] + o["infer_ms"]["median"] + o["decode_nms_ms"]["median"]
    print(f"| {t['size']} | {t['threads']} | {t['model_median_ms']:.1f} / {t['model_p90_ms']:.1f} "
          f"| {u['model_median_ms']:.1f} / {u['model_p90_ms']:.1f} "
          f"| {o['infer_ms']['median']:.1f} / {o['infer_ms']['p90']:.1f} "
          f"| {t['model_median_ms'] / o['infer_ms']['median']:.2f}x "
          f"| {t['e2e_median_ms']:.1f} | {u['e2e_median_ms']:.1f} | {ort_e2e:.1f} |")
print(f"\nCPU: {cpu}; onnxruntime {o['onnxruntime']}; image {o['image']} {o['image_size']}; {rows[0]['iters']} iterations each.")
PY
