#!/usr/bin/env python3
"""Benchmark: latency of the DeepStack detection route for Frigate's frames.

Frigate's `deepstack` detector posts each region as a 320x320 JPEG to
/v1/vision/detection with a 100 ms timeout. This starts the given
opennvr-edge binary (temp data dir, no cameras), makes a 320x320 JPEG from
a photo with ffmpeg, warms up, then times RUNS sequential requests end to
end (client side: connect, upload, inference, answer) and prints the
median, p90, min and max in ms, and the server's own inferenceMs median, as
one JSON line.

  scripts/bench-deepstack.py target/release/opennvr-edge [--image models/dist/samples/bus.jpg] [--runs 50]

Use a release build: a debug build measures the compiler, not the detector.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid


def post_image(url, jpeg):
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"api_key\"\r\n\r\n\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.load(r)
    return (time.perf_counter() - t0) * 1000, answer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--image", default="models/dist/samples/bus.jpg")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-deepstack-")
    frame = os.path.join(tmp, "frame.jpg")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", a.image, "-vf",
                    "scale=320:320", "-q:v", "3", frame], check=True)
    jpeg = open(frame, "rb").read()
    env = dict(os.environ, OPENNVR_AI_LISTEN="127.0.0.1:0", OPENNVR_NVR_LISTEN="127.0.0.1:0",
               OPENNVR_DATA_DIR=os.path.join(tmp, "data"), OPENNVR_LOG="warn")
    env.setdefault("OPENNVR_MODELS_DIR", os.path.abspath("models/dist"))
    env.pop("OPENNVR_CONFIG", None)
    d = subprocess.Popen([a.binary, "run"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = d.stdout.readline()
        ai = next(w[3:] for w in line.split() if w.startswith("ai="))
        url = f"http://{ai}/v1/vision/detection"
        for _ in range(a.warmup):
            post_image(url, jpeg)
        total, server = [], []
        for _ in range(a.runs):
            ms, answer = post_image(url, jpeg)
            total.append(ms)
            server.append(answer["inferenceMs"])
        total.sort()
        print(json.dumps({
            "runs": a.runs, "cores": os.cpu_count(),
            "median_ms": round(statistics.median(total), 1),
            "p90_ms": round(total[int(0.9 * (len(total) - 1))], 1),
            "min_ms": round(total[0], 1), "max_ms": round(total[-1], 1),
            "under_100ms": sum(t < 100 for t in total),
            "server_inference_median_ms": statistics.median(server),
            "predictions": answer["count"],
        }))
    finally:
        d.terminate()
        d.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
