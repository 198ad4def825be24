#!/usr/bin/env python3
"""The client half of scripts/gpu-check.sh (stdlib only).

  gpu_compare.py bench AI_URL SAMPLES_DIR RUNS OUT.json   answers + latencies of one daemon
  gpu_compare.py health AI_URL BACKEND                    /health shows the GPU and BACKEND per loaded model
  gpu_compare.py compare CPU.json GPU.json IOU CONF       parity of the answers, latencies side by side

Parity: the same detections (same count; each CPU box matched to the GPU box of the same label
with the best IoU) with IoU >= IOU, or every corner within 1 px (answers are whole pixels where the
API rounds), and confidences within CONF.
"""
import base64
import json
import os
import statistics
import sys
import time
import urllib.request

TASKS = ("object_detection", "face_detection")


def post(url, body, timeout=300):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def bench(ai, samples, runs, out):
    result = {"answers": {}, "latency_ms": {}}
    for name in sorted(os.listdir(samples)):
        b64 = base64.b64encode(open(os.path.join(samples, name), "rb").read()).decode()
        for task in TASKS:
            body = {"task": task, "data": {"frame": {"b64": b64}, "camera_id": "gpu-check"}}
            key = f"{name}:{task}"
            first = post(f"{ai}/infer", body)  # loads the model (and compiles CUDA kernels)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                post(f"{ai}/infer", body)
                times.append((time.perf_counter() - t0) * 1000)
            result["answers"][key] = first
            result["latency_ms"][key] = {"median": statistics.median(times), "min": min(times)}
            print(f"  {key}: {len(items(first))} found, median {statistics.median(times):.1f} ms", flush=True)
    result["health"] = get(f"{ai}/health")
    json.dump(result, open(out, "w"), indent=1)


def health(ai, backend):
    h = get(f"{ai}/health")
    gpu = h["hardware"].get("gpu")
    print("  hardware.gpu:", json.dumps(gpu))
    ok = True
    if backend == "tract-cpu":
        pass  # a dry run on a box without a GPU
    elif not gpu:
        print("  FAIL: /health reports no GPU")
        ok = False
    elif gpu.get("ai_backend") != backend:
        print(f"  FAIL: hardware.gpu.ai_backend is {gpu.get('ai_backend')!r}, not {backend!r}")
        ok = False
    loaded = {k: m["backend"] for k, m in h["models"].items() if m["loaded"]}
    print("  loaded models:", json.dumps(loaded))
    if not loaded:
        print("  FAIL: no model loaded")
        ok = False
    for k, b in loaded.items():
        if b != backend:
            print(f"  FAIL: model {k} runs on {b}, not {backend}")
            ok = False
    return ok


def items(answer):
    return answer.get("detections") or answer.get("faces") or []


def corners(task, bbox):
    if task == "face_detection":  # [x1, y1, x2, y2]
        return list(map(float, bbox))
    x, y, w, h = map(float, bbox)  # [x, y, w, h]
    return [x, y, x + w, y + h]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def parity(key, cpu, gpu, min_iou, max_conf):
    task = key.split(":", 1)[1]
    c, g = items(cpu), items(gpu)
    problems = []
    if len(c) != len(g):
        problems.append(f"{len(c)} on the CPU, {len(g)} on the GPU")
    worst_iou, worst_conf = 1.0, 0.0
    free = list(g)
    for d in c:
        cb = corners(task, d["bbox"])
        same = [x for x in free if x.get("label") == d.get("label")]
        if not same:
            problems.append(f"CPU {d.get('label', 'face')} at {d['bbox']} not found on the GPU")
            continue
        best = max(same, key=lambda x: iou(cb, corners(task, x["bbox"])))
        free.remove(best)
        gb = corners(task, best["bbox"])
        v = iou(cb, gb)
        px = max(abs(p - q) for p, q in zip(cb, gb))
        dc = abs(d["confidence"] - best["confidence"])
        worst_iou, worst_conf = min(worst_iou, v), max(worst_conf, dc)
        if v < min_iou and px > 1.0:
            problems.append(f"IoU {v:.4f} ({px:.1f} px) at {d['bbox']} vs {best['bbox']}")
        if dc > max_conf:
            problems.append(f"confidence {d['confidence']:.4f} vs {best['confidence']:.4f}")
    return worst_iou, worst_conf, problems


def compare(cpu_file, gpu_file, min_iou, max_conf):
    cpu, gpu = json.load(open(cpu_file)), json.load(open(gpu_file))
    ok = True
    print(f"  {'image:task':34} {'found':>5} {'min IoU':>8} {'max dconf':>9} {'CPU ms':>8} {'GPU ms':>8} {'speed-up':>8}")
    for key in sorted(cpu["answers"]):
        w_iou, w_conf, problems = parity(key, cpu["answers"][key], gpu["answers"][key], min_iou, max_conf)
        lc, lg = cpu["latency_ms"][key]["median"], gpu["latency_ms"][key]["median"]
        print(f"  {key:34} {len(items(cpu['answers'][key])):5d} {w_iou:8.4f} {w_conf:9.4f} {lc:8.1f} {lg:8.1f} {lc / lg:7.1f}x")
        for p in problems:
            print(f"    FAIL: {p}")
            ok = False
    return ok


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "bench" and len(argv) == 6:
        bench(argv[2], argv[3], int(argv[4]), argv[5])
        return 0
    if mode == "health" and len(argv) == 4:
        return 0 if health(argv[2], argv[3]) else 1
    if mode == "compare" and len(argv) == 6:
        return 0 if compare(argv[2], argv[3], float(argv[4]), float(argv[5])) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
