#!/usr/bin/env python3
"""onnxruntime latency benchmark for the detector models.

    python models/bench_ort.py --model DIR/yolov4-tiny-416.onnx --image IMG --threads N --iters K

Times, separately, over K iterations after --warmup untimed runs:
  * preprocess: letterbox + NCHW float tensor from the already-decoded RGB image
    (models/reference.py's letterbox; JPEG decoding is excluded and reported once);
  * infer: session.run() only (preprocess excluded);
  * decode: yolo decode + NMS (models/reference.py) at --conf/--iou.
Reports median and p90 (nearest rank) in milliseconds as JSON on stdout.
intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution, default graph
optimisation (ORT_ENABLE_ALL), CPUExecutionProvider.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402


def stats(samples_ns: list[int]) -> dict:
    ms = sorted(s / 1e6 for s in samples_ns)
    n = len(ms)
    p90 = ms[max(0, math.ceil(0.9 * n) - 1)]
    return {
        "median": round(float(np.median(ms)), 3),
        "p90": round(p90, 3),
        "min": round(ms[0], 3),
        "mean": round(sum(ms) / n, 3),
        "n": n,
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", "r", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="onnxruntime latency benchmark")
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--sidecar", help="decoder JSON (default: <model stem>.json)")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.threads < 1:
        ap.error("--iters and --threads must be >= 1")

    import onnxruntime as ort

    side, side_path = ref.load_sidecar(args.model, args.sidecar)
    labels = ref.load_labels(side, side_path)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t0 = time.perf_counter_ns()
    sess = ort.InferenceSession(args.model, sess_options=opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    size = ref.input_size(sess)
    names = [h["name"] for h in side["outputs"]]

    t0 = time.perf_counter_ns()
    img = ref.load_rgb(args.image)
    jpeg_ms = (time.perf_counter_ns() - t0) / 1e6
    pad = float(side.get("pad_value", 0.5))

    tensor, scale, px, py = ref.letterbox(img, size, pad)
    for _ in range(args.warmup):
        sess.run(names, {side["input"]: tensor})

    load_before = [round(v, 2) for v in os.getloadavg()]
    pre, inf, post = [], [], []
    n_dets = 0
    for _ in range(args.iters):
        t0 = time.perf_counter_ns()
        tensor, scale, px, py = ref.letterbox(img, size, pad)
        t1 = time.perf_counter_ns()
        outs = sess.run(names, {side["input"]: tensor})
        t2 = time.perf_counter_ns()
        dets = ref.decode(dict(zip(names, outs)), side, size, args.conf)
        dets = ref.nms(ref.to_source(dets, scale, px, py), args.iou)
        t3 = time.perf_counter_ns()
        pre.append(t1 - t0)
        inf.append(t2 - t1)
        post.append(t3 - t2)
        n_dets = len(dets)

    report = {
        "model": os.path.basename(args.model),
        "input_size": size,
        "image": os.path.basename(args.image),
        "image_size": [int(img.shape[1]), int(img.shape[0])],
        "threads": args.threads,
        "iters": args.iters,
        "warmup": args.warmup,
        "infer_ms": stats(inf),
        "preprocess_ms": stats(pre),
        "decode_nms_ms": stats(post),
        "jpeg_decode_ms_once": round(jpeg_ms, 3),
        "session_load_ms": round(load_ms, 3),
        "detections": n_dets,
        "labels_seen": sorted({labels[d[5]] for d in dets}),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
