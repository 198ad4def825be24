#!/usr/bin/env python3
"""Compare our ONNX against Debian's darknet (see models/validate/run.sh for the whole flow).

Inputs: a dn_dump output directory (input.f32, yolo_K.f32, darknet's detections as JSON
lines), our ONNX model(s) and the source image. Reports:

1. raw tensors: our ONNX run on darknet's exact input tensor vs darknet's raw conv outputs
   (max abs diff; also after the sigmoid darknet applies to x/y/obj/cls);
2. boxes: our numpy decode of (1) with darknet's own rules (scale_x_y ignored, darknet's
   letterbox geometry, prob > thresh, per-class NMS 0.45) vs darknet's printed detections;
3. end to end: models/reference.py (our letterbox, scale_x_y from the sidecar) vs darknet.

Prints a JSON report; exits non-zero if (2) does not match (every darknet box matched by
class with IoU >= 0.99 and |dconf| < 0.01, and no extra boxes).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reference as ref  # noqa: E402


def read_dn_dets(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                out.append((*d["bbox"], d["confidence"], d["class_id"]))
    return out


def match(a, b):
    """Greedy by class/IoU: returns (pairs [(da, db, iou)], unmatched_a, unmatched_b)."""
    pairs, used = [], set()
    ua = []
    for da in sorted(a, key=lambda d: -d[4]):
        best, bi = 0.0, None
        for j, db in enumerate(b):
            if j in used or db[5] != da[5]:
                continue
            v = ref.iou(da, db)
            if v > best:
                best, bi = v, j
        if bi is None:
            ua.append(da)
        else:
            used.add(bi)
            pairs.append((da, b[bi], best))
    ub = [db for j, db in enumerate(b) if j not in used]
    return pairs, ua, ub


def summarize(pairs, ua, ub, labels):
    return {
        "matched": len(pairs),
        "min_iou": round(min((p[2] for p in pairs), default=1.0), 5),
        "max_abs_dconf": round(max((abs(p[0][4] - p[1][4]) for p in pairs), default=0.0), 6),
        "pairs": [
            {
                "label": labels[p[0][5]],
                "darknet_conf": round(p[0][4], 4),
                "ours_conf": round(p[1][4], 4),
                "iou": round(p[2], 4),
            }
            for p in pairs
        ],
        "only_darknet": [(labels[d[5]], round(d[4], 4)) for d in ua],
        "only_ours": [(labels[d[5]], round(d[4], 4)) for d in ub],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="dn_dump output dir (with dets.jsonl)")
    ap.add_argument("--onnx", required=True, help="our model (AlexeyAB batch-norm fold)")
    ap.add_argument("--onnx-pj", help="same model converted with --bn-mode pjreddie")
    ap.add_argument("--image", required=True)
    ap.add_argument("--thresh", type=float, default=0.25)
    ap.add_argument("--report", help="write the full JSON report here (stdout gets a summary)")
    a = ap.parse_args()

    side, side_path = ref.load_sidecar(a.onnx)
    labels = ref.load_labels(side, side_path)
    report = {"image": os.path.basename(a.image), "model": os.path.basename(a.onnx)}

    sess = ref.make_session(a.onnx)
    size = ref.input_size(sess)
    x = np.fromfile(os.path.join(a.dump, "input.f32"), dtype=np.float32).reshape(1, 3, size, size)
    ours = ref.run(sess, side, x)
    dn = {}
    for h in side["outputs"]:
        dn[h["name"]] = np.fromfile(os.path.join(a.dump, h["name"] + ".f32"), dtype=np.float32).reshape(
            ours[h["name"]].shape
        )

    def raw_report(outs):
        r = {}
        for name, arr in outs.items():
            d = dn[name]
            sig = ref.sigmoid(arr.astype(np.float64))
            sig_dn = ref.sigmoid(d.astype(np.float64))
            r[name] = {
                "max_abs": float(np.max(np.abs(arr - d))),
                "max_abs_after_sigmoid": float(np.max(np.abs(sig - sig_dn))),
                "dn_range": [float(d.min()), float(d.max())],
            }
        return r

    report["raw_alexeyab_fold_vs_darknet"] = raw_report(ours)
    if a.onnx_pj:
        sess_pj = ref.make_session(a.onnx_pj)
        report["raw_pjreddie_fold_vs_darknet"] = raw_report(ref.run(sess_pj, side, x))

    # Darknet-rules decode of our outputs on darknet's input.
    from PIL import Image

    with Image.open(a.image) as im:
        iw, ih = im.size
    if size / iw < size / ih:
        new_w, new_h = size, (ih * size) // iw
    else:
        new_h, new_w = size, (iw * size) // ih
    # darknet's correct_yolo_boxes: relative box -> (b - (net - new)/2/net) / (new/net)
    px, py = (size - new_w) / 2.0, (size - new_h) / 2.0

    def to_src(dets):
        return [
            ((x1 - px) / new_w * iw, (y1 - py) / new_h * ih, (x2 - px) / new_w * iw, (y2 - py) / new_h * ih, s, k)
            for x1, y1, x2, y2, s, k in dets
        ]

    dn_dets = read_dn_dets(os.path.join(a.dump, "dets.jsonl"))
    ours_dn_rules = ref.decode(ours, side, size, a.thresh, scale_x_y=1.0)
    ours_dn_rules = [d for d in ours_dn_rules if d[4] > a.thresh]
    ours_dn_rules = ref.nms(to_src(ours_dn_rules), 0.45)
    pairs, ua, ub = match(dn_dets, ours_dn_rules)
    report["darknet_rules_same_input"] = summarize(pairs, ua, ub, labels)
    ok = not ua and not ub and all(p[2] >= 0.99 and abs(p[0][4] - p[1][4]) < 0.01 for p in pairs)

    # Same input, but with the cfg's scale_x_y (what the model was trained with).
    ours_sxy = ref.nms(to_src(ref.decode(ours, side, size, a.thresh)), 0.45)
    report["scale_x_y_1.05_same_input"] = summarize(*match(dn_dets, ours_sxy), labels)

    # End to end: reference.py's own preprocessing.
    img = ref.load_rgb(a.image)
    e2e = ref.detect(sess, side, labels, img, a.thresh, 0.45)
    e2e = [(*d["bbox"], d["confidence"], d["class_id"]) for d in e2e]
    report["reference_py_end_to_end"] = summarize(*match(dn_dets, e2e), labels)

    report["ok"] = ok
    if not a.report:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0 if ok else 1
    with open(a.report, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    def raw(k):
        return "/".join(f"{v['max_abs']:.1e}" for v in report[k].values()) if k in report else "-"

    print(f"{report['image']} @ {size}: raw max|diff| vs darknet: alexeyab-fold {raw('raw_alexeyab_fold_vs_darknet')}, "
          f"pjreddie-fold {raw('raw_pjreddie_fold_vs_darknet')}")
    for k in ("darknet_rules_same_input", "scale_x_y_1.05_same_input", "reference_py_end_to_end"):
        r = report[k]
        print(f"  {k}: {r['matched']} matched, min IoU {r['min_iou']:.4f}, max |dconf| {r['max_abs_dconf']:.4f}, "
              f"only darknet {r['only_darknet']}, only ours {r['only_ours']}")
    print("  darknet: " + ", ".join(f"{p['label']} {p['darknet_conf']:.3f}" for p in report["darknet_rules_same_input"]["pairs"]))
    print(f"  {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
