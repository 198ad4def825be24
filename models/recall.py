#!/usr/bin/env python3
"""Recall of yolov4-tiny-320 against yolov4-tiny-416 on real frames.

Runs both detectors (onnxruntime, the reference decoder in reference.py)
on every Nth frame of a clip (default: Debian's vtest.avi street scene)
and counts the people 416 finds (score >= --conf) that 320 also finds
(a 320 box of IoU >= 0.5), plus the people only 320 finds. 416 is the
reference because it is the default; this says what a camera gives up
(or gains) by choosing 320 (`[ingest] detect_models`).

  models/recall_320.py [--clip PATH] [--every 10] [--conf 0.35]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def people(sess, side, labels, img, conf):
    return [d["bbox"] for d in ref.detect(sess, side, labels, img, conf, 0.45) if d["label"] == "person"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=VTEST)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--conf", type=float, default=0.35)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    dist = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist")
    models = {}
    for size in (416, 320):
        path = os.path.join(dist, f"yolov4-tiny-{size}.onnx")
        side, side_path = ref.load_sidecar(path)
        models[size] = (ref.make_session(path, a.threads), side, ref.load_labels(side, side_path))
    work = tempfile.mkdtemp(prefix="recall-")
    subprocess.run(["ffmpeg", "-v", "error", "-i", a.clip, "-vf", f"select=not(mod(n\\,{a.every}))",
                    "-vsync", "vfr", os.path.join(work, "f%04d.png")], check=True)
    frames = sorted(f for f in os.listdir(work) if f.endswith(".png"))
    ref_n = found = extra = 0
    for f in frames:
        img = ref.load_rgb(os.path.join(work, f))
        big = people(*models[416], img, a.conf)
        small = people(*models[320], img, a.conf)
        used = set()
        for b in big:
            ref_n += 1
            best = max(range(len(small)), key=lambda i: ref.iou(b, small[i]), default=None)
            if best is not None and best not in used and ref.iou(b, small[best]) >= 0.5:
                used.add(best)
                found += 1
        extra += len(small) - len(used)
        os.remove(os.path.join(work, f))
    os.rmdir(work)
    print(json.dumps({"clip": os.path.basename(a.clip), "frames": len(frames), "conf": a.conf,
                      "people_416": ref_n, "found_by_320": found,
                      "recall_320_vs_416": round(found / max(ref_n, 1), 3),
                      "people_only_320": extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
