#!/usr/bin/env python3
"""onnxruntime side of the BLIP caption benchmark (docs/performance.md): the
encoder once and 19 greedy decoder steps on the static-cache decoder, two
threads. usage: bench_blip_ort.py DIR MODEL_ID (files from export-blip.py)."""
import sys, time, os, json, resource
import numpy as np, onnxruntime as ort
d, mid = sys.argv[1], sys.argv[2]
so = ort.SessionOptions(); so.intra_op_num_threads = 2
enc = ort.InferenceSession(f"{d}/{mid}-encoder.onnx", so, providers=["CPUExecutionProvider"])
dec = ort.InferenceSession(f"{d}/{mid}-decoder.onnx", so, providers=["CPUExecutionProvider"])
pv = np.random.RandomState(0).randn(1, 3, 384, 384).astype(np.float32)
past_shape = [i.shape for i in dec.get_inputs() if i.name == "past"][0]
L, _, _, H, M, dh = past_shape
def caption(steps=19):
    t0 = time.perf_counter(); cross = enc.run(None, {"pixel_values": pv})[0]; t1 = time.perf_counter()
    past = np.zeros((L, 2, 1, H, M, dh), np.float32); tok = 30522
    for pos in range(steps):
        mask = np.full((1, M + 1), -1e9, np.float32); mask[0, :pos] = 0; mask[0, M] = 0
        logits, present = dec.run(None, {"input_ids": np.array([[tok]], np.int64), "position": np.array([pos], np.int64), "past": past, "mask": mask, "cross_kv": cross})
        past[:, :, :, :, pos, :] = present[:, :, :, :, 0, :]; tok = int(np.argmax(logits[0]))
    return t1 - t0, time.perf_counter() - t1
caption(2)
r = [caption() for _ in range(3)]
print(json.dumps({"ort": ort.__version__, "encoder_s": [round(a, 3) for a, _ in r], "decode19_s": [round(b, 3) for _, b in r], "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
