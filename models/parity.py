#!/usr/bin/env python3
"""Detection parity check between two detection JSON files.

    python models/parity.py OURS.json REF.json [--min-conf 0.3] [--min-iou 0.9]

Both files hold {"detections": [{"bbox": [x1, y1, x2, y2], "confidence": c, "class_id": k, ...}]}
(a bare list is accepted too), e.g. `opennvr-edge` output and models/reference.py output.

Rule: every REF box with confidence >= min-conf must have a same-class box in OURS with
IoU >= min-iou, and every OURS box with confidence >= min-conf must have one in REF. Matching
is greedy and one-to-one per direction: boxes are taken by descending confidence and paired
with the highest-IoU unused same-class box on the other side (of any confidence, so a box
that sits just under the threshold on one side still counts as found).

Prints a short summary; exit status 0 = parity, 1 = mismatch, 2 = bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import iou  # noqa: E402  (one IoU for every script here)


def load(path: str) -> list[dict]:
    with open(path, "r", encoding="utf-8") as f:
        doc = json.load(f)
    dets = doc["detections"] if isinstance(doc, dict) else doc
    if not isinstance(dets, list):
        raise ValueError(f"{path}: no detections list")
    out = []
    for i, d in enumerate(dets):
        try:
            box = [float(v) for v in d["bbox"]]
            if len(box) != 4:
                raise ValueError
            out.append(
                {
                    "bbox": box,
                    "confidence": float(d["confidence"]),
                    "class_id": int(d["class_id"]),
                    "label": str(d.get("label", d["class_id"])),
                }
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: detection {i} is malformed: {d!r}")
    return out


def one_way(src: list[dict], dst: list[dict], min_conf: float, min_iou: float):
    """Greedy one-to-one matching of src boxes (conf >= min_conf) into dst."""
    used: set[int] = set()
    matched, failed = [], []
    for d in sorted((d for d in src if d["confidence"] >= min_conf), key=lambda d: -d["confidence"]):
        best, best_j = 0.0, None
        for j, e in enumerate(dst):
            if j in used or e["class_id"] != d["class_id"]:
                continue
            v = iou(d["bbox"], e["bbox"])
            if v > best:
                best, best_j = v, j
        if best_j is not None and best >= min_iou:
            used.add(best_j)
            matched.append((d, dst[best_j], best))
        else:
            failed.append((d, dst[best_j] if best_j is not None else None, best))
    return matched, failed


def describe(d: dict) -> str:
    x1, y1, x2, y2 = d["bbox"]
    return f"{d['label']} {d['confidence']:.3f} [{x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="detection parity check")
    ap.add_argument("ours")
    ap.add_argument("ref")
    ap.add_argument("--min-conf", type=float, default=0.3)
    ap.add_argument("--min-iou", type=float, default=0.9)
    args = ap.parse_args(argv)
    try:
        ours, ref = load(args.ours), load(args.ref)
    except (OSError, ValueError, KeyError) as e:
        print(f"parity: {e}", file=sys.stderr)
        return 2

    ok = True
    for title, src, dst in (("ref -> ours", ref, ours), ("ours -> ref", ours, ref)):
        matched, failed = one_way(src, dst, args.min_conf, args.min_iou)
        n = len(matched) + len(failed)
        worst = min((m[2] for m in matched), default=None)
        dconf = max((abs(m[0]["confidence"] - m[1]["confidence"]) for m in matched), default=0.0)
        line = f"{title}: {len(matched)}/{n} boxes with conf >= {args.min_conf} matched"
        if worst is not None:
            line += f", worst IoU {worst:.4f}, max |dconf| {dconf:.4f}"
        print(line)
        for d, e, v in failed:
            ok = False
            other = describe(e) if e is not None else "no same-class box"
            print(f"  MISSING {describe(d)}: best {other} IoU {v:.3f}")
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
