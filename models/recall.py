#!/usr/bin/env python3
"""Recall of a candidate detector against a reference detector on real frames.

Runs both ONNX files (onnxruntime, the reference decoder in reference.py)
on every Nth frame of a clip (default: Debian's vtest.avi street scene)
and counts the people the reference finds (score >= --conf) that the
candidate also finds (a candidate box of IoU >= 0.5), plus the people only
the candidate finds. The defaults compare yolov4-tiny-320 with the default
yolov4-tiny-416: what a camera gives up (or gains) by choosing 320
(`[ingest] detect_models`). `--candidate` takes any file with the same
decoder sidecar, e.g. an int8 model made by quantize_int8.py.

  models/recall.py [--reference PATH] [--candidate PATH] [--clip PATH] [--every 10] [--conf 0.35]
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
DIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist")


def people(sess, side, labels, img, conf):
    return [d["bbox"] for d in ref.detect(sess, side, labels, img, conf, 0.45) if d["label"] == "person"]


def load(path, sidecar, threads):
    """A session with the decoder sidecar of `sidecar` (defaults to the model's own)."""
    side, side_path = ref.load_sidecar(sidecar or path)
    return ref.make_session(path, threads), side, ref.load_labels(side, side_path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=os.path.join(DIST, "yolov4-tiny-416.onnx"))
    ap.add_argument("--candidate", default=os.path.join(DIST, "yolov4-tiny-320.onnx"))
    ap.add_argument("--sidecar-of", help="take the candidate's decoder sidecar from this model (int8 files have none)")
    ap.add_argument("--clip", default=VTEST)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--conf", type=float, default=0.35)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    reference = load(a.reference, None, a.threads)
    candidate = load(a.candidate, a.sidecar_of, a.threads)
    work = tempfile.mkdtemp(prefix="recall-")
    subprocess.run(["ffmpeg", "-v", "error", "-i", a.clip, "-vf", f"select=not(mod(n\\,{a.every}))",
                    "-vsync", "vfr", os.path.join(work, "f%04d.png")], check=True)
    frames = sorted(f for f in os.listdir(work) if f.endswith(".png"))
    ref_n = found = extra = 0
    for f in frames:
        img = ref.load_rgb(os.path.join(work, f))
        want = people(*reference, img, a.conf)
        got = people(*candidate, img, a.conf)
        used = set()
        for b in want:
            ref_n += 1
            best = max(range(len(got)), key=lambda i: ref.iou(b, got[i]), default=None)
            if best is not None and best not in used and ref.iou(b, got[best]) >= 0.5:
                used.add(best)
                found += 1
        extra += len(got) - len(used)
        os.remove(os.path.join(work, f))
    os.rmdir(work)
    print(json.dumps({"clip": os.path.basename(a.clip), "frames": len(frames), "conf": a.conf,
                      "reference": os.path.basename(a.reference), "candidate": os.path.basename(a.candidate),
                      "people_reference": ref_n, "found_by_candidate": found,
                      "recall": round(found / max(ref_n, 1), 3), "people_only_candidate": extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
