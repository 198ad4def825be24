#!/usr/bin/env python3
"""Reference YOLO (darknet layout) detector on onnxruntime, for parity checks against the Rust side.

    python models/reference.py --model DIR/yolov4-tiny-416.onnx --image IMG [--conf 0.25 --iou 0.45]

Prints {"detections": [{"bbox": [x1, y1, x2, y2], "confidence": c, "class_id": k, "label": s}, ...]}
with boxes in source-image pixels, highest confidence first.

Pipeline (this is the behaviour the Rust decoder is compared against):

1. Decode the image with Pillow, convert to RGB, scale to 0..1 (float32, /255).
2. Letterbox to S x S: scale = min(S/w, S/h); nw = round(w*scale), nh = round(h*scale)
   (round half up); Pillow BILINEAR resize (antialiased when shrinking, like the Rust
   side's Triangle filter); paste at ((S-nw)//2, (S-nh)//2) on a canvas filled with 0.5.
3. Run the model; for every output yolo_k with stride s, grid G = S/s, anchor slot a, cell (cy, cx):
   bx = (cx + sigmoid(tx) * sxy - (sxy - 1) / 2) / G * S, likewise by;
   bw = exp(tw) * anchor_w, bh = exp(th) * anchor_h (pixels of the S x S input);
   score(class) = sigmoid(obj) * sigmoid(cls). Like darknet, one box yields one detection per
   class whose score is >= conf.
4. Map back to the source image: subtract the pad, divide by scale.
5. Class-aware greedy NMS (IoU > iou suppresses the lower score) on the unclipped boxes,
   then clip the survivors to the image.

Decode parameters (anchors, strides, scale_x_y, labels file) come from the sidecar JSON next
to the model (<model stem>.json), see models/README.md; --sidecar overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


# --------------------------------------------------------------------------- preprocessing


def load_rgb(path: str) -> np.ndarray:
    """HxWx3 float32 RGB in 0..1."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        arr = np.asarray(im, dtype=np.uint8)
    return arr.astype(np.float32) / np.float32(255.0)


def resize_bilinear(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """HxWx3 float32 (0..1, from uint8) -> out_h x out_w x 3, Pillow BILINEAR.

    Pillow widens the bilinear kernel by the shrink factor (antialiasing), as
    the Rust side does (image's Triangle filter); without it YOLOv4-tiny loses
    people on 1080p frames shrunk to 416.
    """
    from PIL import Image

    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    out = Image.fromarray(u8, "RGB").resize((out_w, out_h), Image.BILINEAR)
    return np.asarray(out, dtype=np.float32) / np.float32(255.0)


def round_half_up(v: float) -> int:
    return int(np.floor(v + 0.5))


def letterbox(img: np.ndarray, size: int, pad_value: float = 0.5):
    """Returns (NCHW float32 tensor, scale, pad_x, pad_y)."""
    h, w = img.shape[:2]
    scale = min(size / w, size / h)
    nw = max(1, min(size, round_half_up(w * scale)))
    nh = max(1, min(size, round_half_up(h * scale)))
    pad_x = (size - nw) // 2
    pad_y = (size - nh) // 2
    canvas = np.full((size, size, 3), pad_value, dtype=np.float32)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = resize_bilinear(img, nw, nh)
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
    return tensor, scale, pad_x, pad_y


# --------------------------------------------------------------------------- decoding


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode(outputs: dict, side: dict, size: int, conf: float, scale_x_y: float | None = None):
    """Raw yolo outputs -> list of (x1, y1, x2, y2, score, class_id) in network-input pixels."""
    classes = int(side["classes"])
    sxy = float(side["scale_x_y"] if scale_x_y is None else scale_x_y)
    dets = []
    for head in side["outputs"]:
        raw = np.asarray(outputs[head["name"]], dtype=np.float32)
        anchors = np.asarray(head["anchors"], dtype=np.float32)
        n_anchor = anchors.shape[0]
        _, ch, gh, gw = raw.shape
        if ch != n_anchor * (5 + classes):
            raise ValueError(f"{head['name']}: {ch} channels, expected {n_anchor}*(5+{classes})")
        if gh * head["stride"] != size or gw * head["stride"] != size:
            raise ValueError(f"{head['name']}: grid {gh}x{gw} does not match stride {head['stride']}")
        p = raw.reshape(n_anchor, 5 + classes, gh, gw).astype(np.float64)
        cy, cx = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        for a in range(n_anchor):
            obj = sigmoid(p[a, 4])
            cls = sigmoid(p[a, 5:])
            score = obj[None] * cls  # classes x gh x gw
            keep = np.argwhere(score >= conf)
            if keep.size == 0:
                continue
            bx = (cx + sigmoid(p[a, 0]) * sxy - (sxy - 1.0) / 2.0) / gw * size
            by = (cy + sigmoid(p[a, 1]) * sxy - (sxy - 1.0) / 2.0) / gh * size
            bw = np.exp(p[a, 2]) * anchors[a, 0]
            bh = np.exp(p[a, 3]) * anchors[a, 1]
            for k, y, x in keep:
                dets.append(
                    (
                        bx[y, x] - bw[y, x] / 2,
                        by[y, x] - bh[y, x] / 2,
                        bx[y, x] + bw[y, x] / 2,
                        by[y, x] + bh[y, x] / 2,
                        float(score[k, y, x]),
                        int(k),
                    )
                )
    return dets


def iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(dets, thresh: float):
    """Class-aware greedy NMS; input/outputs are (x1, y1, x2, y2, score, class_id)."""
    order = sorted(dets, key=lambda d: (-d[4], d[5], d[0], d[1]))
    kept = []
    for d in order:
        if all(k[5] != d[5] or iou(k, d) <= thresh for k in kept):
            kept.append(d)
    return kept


def to_source(dets, scale: float, pad_x: int, pad_y: int):
    return [
        ((x1 - pad_x) / scale, (y1 - pad_y) / scale, (x2 - pad_x) / scale, (y2 - pad_y) / scale, s, k)
        for x1, y1, x2, y2, s, k in dets
    ]


def clip(dets, w: int, h: int):
    out = []
    for x1, y1, x2, y2, s, k in dets:
        out.append((min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h), s, k))
    return out


# --------------------------------------------------------------------------- glue


def load_sidecar(model_path: str, sidecar_path: str | None = None) -> tuple[dict, str]:
    path = sidecar_path or os.path.splitext(model_path)[0] + ".json"
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f), path


def load_labels(side: dict, sidecar_path: str) -> list[str]:
    path = os.path.join(os.path.dirname(os.path.abspath(sidecar_path)), side["labels"])
    with open(path, "r", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def make_session(model_path: str, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])


def input_size(sess) -> int:
    shape = sess.get_inputs()[0].shape
    if len(shape) != 4 or shape[2] != shape[3] or not isinstance(shape[2], int):
        raise ValueError(f"model input must be [1,3,S,S], got {shape}")
    return int(shape[2])


def run(sess, side: dict, tensor: np.ndarray) -> dict:
    names = [h["name"] for h in side["outputs"]]
    res = sess.run(names, {side["input"]: tensor})
    return dict(zip(names, res))


def detect(sess, side, labels, img, conf, iou_thr, scale_x_y=None):
    size = input_size(sess)
    tensor, scale, px, py = letterbox(img, size, float(side.get("pad_value", 0.5)))
    outs = run(sess, side, tensor)
    dets = decode(outs, side, size, conf, scale_x_y)
    dets = nms(to_source(dets, scale, px, py), iou_thr)
    h, w = img.shape[:2]
    dets = clip(dets, w, h)
    return [
        {
            "bbox": [round(float(v), 3) for v in d[:4]],
            "confidence": round(float(d[4]), 6),
            "class_id": int(d[5]),
            "label": labels[d[5]] if d[5] < len(labels) else str(d[5]),
        }
        for d in dets
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="onnxruntime reference decode for darknet-layout YOLO ONNX")
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--sidecar", help="decoder JSON (default: <model stem>.json)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    args = ap.parse_args(argv)

    side, side_path = load_sidecar(args.model, args.sidecar)
    labels = load_labels(side, side_path)
    sess = make_session(args.model, args.threads)
    img = load_rgb(args.image)
    dets = detect(sess, side, labels, img, args.conf, args.iou)
    json.dump(
        {
            "model": os.path.basename(args.model),
            "image": os.path.basename(args.image),
            "image_size": [int(img.shape[1]), int(img.shape[0])],
            "detections": dets,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
