#!/usr/bin/env python3
"""Rewrite an AlexeyAB yolov4-tiny cfg/weights pair so the original (pjreddie) darknet can run it.

Debian's `darknet` package is pjreddie's 2018 tree: it has no `[route] groups=/group_id=`
(it warns "Unused field" and routes ALL channels, so the following conv reads the wrong
number of weights and the network is garbage). This tool replaces every grouped route by an
equivalent 1x1 linear convolution whose weights are an exact 0/1 channel selection (bias 0,
no batch-norm), and inserts those weights at the right place in the weights file. The layer
count is unchanged, so all absolute/relative route indices stay valid. x*1 + sum(0*y) + 0 is
exact in float32, so the rewritten network computes the same function.

`[yolo] scale_x_y` is also unknown to pjreddie darknet; it does not affect the raw conv
outputs that are compared, only darknet's own box decode (see compare_darknet.py).

    pjreddie_compat.py --cfg in.cfg --weights in.weights --size 416 --out-cfg o.cfg --out-weights o.weights
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from darknet2onnx import Weights, parse_cfg  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cfg", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--out-cfg", required=True)
    ap.add_argument("--out-weights", required=True)
    a = ap.parse_args()

    sections = parse_cfg(a.cfg)
    w = Weights(a.weights)
    with open(a.weights, "rb") as f:
        header = f.read(20)  # major, minor, revision, seen (size_t): version 0.2.x
    assert w.version[0] * 10 + w.version[1] >= 2

    out_sections = []
    out_w = []
    chans = []
    c = 3
    for i, (name, kv) in enumerate(sections[1:]):
        kv = dict(kv)
        if name == "convolutional":
            n = int(kv["filters"])
            k = int(kv.get("size", 1))
            bn = int(kv.get("batch_normalize", 0))
            cnt = n + (3 * n if bn else 0) + n * c * k * k
            out_w.append(w.take(cnt, f"layer {i}"))
            c = n
        elif name == "route":
            refs = [int(v) for v in kv["layers"].split(",")]
            refs = [i + r if r < 0 else r for r in refs]
            groups = int(kv.get("groups", 1))
            gid = int(kv.get("group_id", 0))
            if groups != 1:
                assert len(refs) == 1 and refs[0] == i - 1, "only `layers=-1` grouped routes"
                cin = chans[refs[0]]
                part = cin // groups
                sel = np.zeros((part, cin), dtype=np.float32)
                sel[np.arange(part), gid * part + np.arange(part)] = 1.0
                out_w.append(np.zeros(part, dtype=np.float32))  # biases
                out_w.append(sel.reshape(-1))  # weights [n, c, 1, 1]
                name = "convolutional"
                kv = {"filters": str(part), "size": "1", "stride": "1", "pad": "0", "activation": "linear"}
                c = part
            else:
                c = sum(chans[r] for r in refs)
        elif name in ("maxpool", "upsample", "yolo"):
            pass
        else:
            raise SystemExit(f"unsupported layer {name}")
        chans.append(c)
        out_sections.append((name, kv))
    assert w.remaining() == 0, w.remaining()

    net = dict(sections[0][1])
    net.update({"width": str(a.size), "height": str(a.size), "batch": "1", "subdivisions": "1"})
    with open(a.out_cfg, "w") as f:
        for name, kv in [("net", net)] + out_sections:
            f.write(f"[{name}]\n")
            for k, v in kv.items():
                f.write(f"{k}={v}\n")
            f.write("\n")
    with open(a.out_weights, "wb") as f:
        f.write(header)
        f.write(np.concatenate(out_w).astype("<f4").tobytes())


if __name__ == "__main__":
    main()
