#!/usr/bin/env python3
"""Convert a darknet YOLO network (cfg + weights) into the ONNX layout opennvr-edge expects.

Written for opennvr-edge from the darknet file formats (AlexeyAB fork semantics); it is
not derived from any other converter.

Output contract (see models/README.md):

* one input ``images``: float32 ``[1, 3, S, S]``, RGB, values in 0..1, letterboxed by the caller;
* one output per ``[yolo]`` layer, in cfg order, named ``yolo_0``, ``yolo_1``, ...: the RAW
  output of the linear convolution feeding that layer (no sigmoid, no decode), shape
  ``[1, len(mask) * (5 + classes), S / stride, S / stride]``; for anchor slot ``a`` of the
  mask the channels are ``a * (5 + classes) + [tx, ty, tw, th, obj, cls...]``;
* batch-norm folded into the convolutions with the AlexeyAB formula
  ``w' = w * gamma / sqrt(var + 1e-5)``, ``b' = beta - gamma * mean / sqrt(var + 1e-5)``,
  computed in float64 and rounded once to float32 (this is what AlexeyAB's
  ``fuse_conv_batchnorm`` does);
* opset 13, IR version 7, only Conv / LeakyRelu / MaxPool / Slice / Concat / Resize (plus
  Relu / Sigmoid / Softplus / Tanh / Mul / Add for layer types yolov4-tiny does not use).

Supported darknet layers: ``[convolutional]`` (groups=1, square stride, no dilation),
``[route]`` (incl. ``groups``/``group_id``), ``[maxpool]``, ``[upsample]``, ``[shortcut]``
(same shape, no weights), ``[yolo]``. Anything else is rejected rather than guessed.

The optional ``--sidecar`` writes the decoder description read by the Rust side.

Only numpy and onnx are needed. The conversion is deterministic: the same inputs and the
same (pinned) numpy/onnx/protobuf versions give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fetch_helper import sha256_file  # the script's own dir is on sys.path

CONVERTER_VERSION = "1"
OPSET = 13
IR_VERSION = 7
LEAKY_SLOPE = 0.1

# Batch-norm epsilon handling. "alexeyab" is what the fork that trained yolov4 uses
# (normalize_cpu / fuse_conv_batchnorm: x / sqrt(var + .00001)). "pjreddie" reproduces the
# original darknet (x / (sqrt(var) + .000001f)); it only exists so that the output can be
# compared bit-for-bit against Debian's pjreddie-based darknet binary (models/validate/).
BN_MODES = ("alexeyab", "pjreddie")


class ConvertError(Exception):
    pass


# --------------------------------------------------------------------------- cfg parsing


def parse_cfg(path: str) -> list[tuple[str, dict[str, str]]]:
    """Returns [(section_name, {key: value})] in file order. Comments (#, ;) are dropped."""
    sections: list[tuple[str, dict[str, str]]] = []
    with open(path, "r", encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise ConvertError(f"{path}:{lineno}: bad section header {line!r}")
                sections.append((line[1:-1].strip(), {}))
                continue
            if "=" not in line:
                raise ConvertError(f"{path}:{lineno}: expected key=value, got {line!r}")
            if not sections:
                raise ConvertError(f"{path}:{lineno}: option outside of a section")
            key, value = line.split("=", 1)
            key = key.strip()
            value = value.strip()
            if key in sections[-1][1]:
                raise ConvertError(f"{path}:{lineno}: duplicate key {key!r}")
            sections[-1][1][key] = value
    if not sections or sections[0][0] not in ("net", "network"):
        raise ConvertError(f"{path}: first section must be [net]")
    return sections


class Opts:
    """Typed access to a section's options that remembers which keys were read."""

    def __init__(self, name: str, index: int, kv: dict[str, str]):
        self.name, self.index, self.kv = name, index, kv

    def _where(self) -> str:
        return f"layer {self.index} [{self.name}]"

    def int(self, key: str, default: int | None = None) -> int:
        if key not in self.kv:
            if default is None:
                raise ConvertError(f"{self._where()}: missing {key}")
            return default
        try:
            return int(self.kv[key])
        except ValueError:
            raise ConvertError(f"{self._where()}: {key}={self.kv[key]!r} is not an integer")

    def float(self, key: str, default: float) -> float:
        if key not in self.kv:
            return default
        return float(self.kv[key])

    def str(self, key: str, default: str) -> str:
        return self.kv.get(key, default)

    def ints(self, key: str) -> list[int]:
        if key not in self.kv:
            raise ConvertError(f"{self._where()}: missing {key}")
        return [int(v) for v in self.kv[key].split(",") if v.strip()]

    def require_default(self, key: str, default: str) -> None:
        """Rejects options whose non-default value this converter does not implement."""
        if key in self.kv and self.kv[key] != default:
            raise ConvertError(f"{self._where()}: {key}={self.kv[key]} is not supported")


# --------------------------------------------------------------------------- weights


class Weights:
    def __init__(self, path: str):
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 16:
            raise ConvertError(f"{path}: too short for a darknet weights file")
        major, minor, revision = np.frombuffer(data, dtype="<i4", count=3)
        # darknet: `seen` is a size_t (8 bytes) from version 0.2 on, an int before.
        if major * 10 + minor >= 2 and major < 1000 and minor < 1000:
            offset = 12 + 8
        else:
            offset = 12 + 4
        if (len(data) - offset) % 4:
            raise ConvertError(f"{path}: payload is not a whole number of float32 values")
        self.version = (int(major), int(minor), int(revision))
        self.values = np.frombuffer(data, dtype="<f4", offset=offset)
        self.pos = 0

    def take(self, n: int, what: str) -> np.ndarray:
        if self.pos + n > self.values.size:
            raise ConvertError(
                f"weights file ended early while reading {what}: need {n} floats at "
                f"{self.pos}, have {self.values.size - self.pos}"
            )
        out = self.values[self.pos : self.pos + n].astype(np.float32)
        self.pos += n
        return out

    def remaining(self) -> int:
        return self.values.size - self.pos


# --------------------------------------------------------------------------- graph building


class Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._const_cache: dict[tuple, str] = {}

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const_i64(self, values: list[int]) -> str:
        key = ("i64", tuple(values))
        if key not in self._const_cache:
            name = "const_i64_" + "_".join(str(v).replace("-", "m") for v in values)
            self._const_cache[key] = self.init(name, np.array(values, dtype=np.int64))
        return self._const_cache[key]

    def const_f32(self, values: list[float]) -> str:
        key = ("f32", tuple(values))
        if key not in self._const_cache:
            name = f"const_f32_{len(self._const_cache)}"
            self._const_cache[key] = self.init(name, np.array(values, dtype=np.float32))
        return self._const_cache[key]


def activation(g: Graph, kind: str, x: str, base: str, out: str) -> str:
    if kind == "linear":
        if x != out:
            g.node("Identity", [x], out, f"{base}_identity")
        return out
    if kind == "leaky":
        return g.node("LeakyRelu", [x], out, f"{base}_leaky", alpha=LEAKY_SLOPE)
    if kind == "relu":
        return g.node("Relu", [x], out, f"{base}_relu")
    if kind == "logistic":
        return g.node("Sigmoid", [x], out, f"{base}_logistic")
    if kind == "mish":
        sp = g.node("Softplus", [x], f"{base}_softplus", f"{base}_softplus")
        th = g.node("Tanh", [sp], f"{base}_tanh", f"{base}_tanh")
        return g.node("Mul", [x, th], out, f"{base}_mish")
    raise ConvertError(f"{base}: activation={kind} is not supported")


def fold_batchnorm(w, bias, scales, mean, var, mode):
    """Returns float32 (weights, bias) with batch-norm folded in."""
    w64 = w.astype(np.float64)
    b64 = bias.astype(np.float64)
    g64 = scales.astype(np.float64)
    m64 = mean.astype(np.float64)
    v64 = var.astype(np.float64)
    if mode == "alexeyab":
        denom = np.sqrt(v64 + 0.00001)
    elif mode == "pjreddie":
        denom = np.sqrt(v64) + float(np.float32(0.000001))
    else:
        raise ConvertError(f"unknown batch-norm mode {mode}")
    bias_f = b64 - g64 * m64 / denom
    factor = g64 / denom
    w_f = w64 * factor.reshape((-1,) + (1,) * (w.ndim - 1))
    return w_f.astype(np.float32), bias_f.astype(np.float32)


def convert(cfg_path: str, weights_path: str, size: int | None, bn_mode: str = "alexeyab"):
    """Builds the ONNX model. Returns (model, info) where info describes the yolo heads."""
    sections = parse_cfg(cfg_path)
    net = Opts(sections[0][0], -1, sections[0][1])
    channels = net.int("channels", 3)
    if channels != 3:
        raise ConvertError(f"[net] channels={channels}: only 3-channel input is supported")
    width = size or net.int("width")
    height = size or net.int("height")
    if width != height:
        raise ConvertError("only square inputs are supported")
    layers = sections[1:]

    weights = Weights(weights_path)
    g = Graph()

    # Pre-scan: the layer feeding the k-th [yolo] produces output `yolo_k`.
    out_override: dict[int, str] = {}
    k = 0
    for i, (name, _) in enumerate(layers):
        if name == "yolo":
            if i == 0:
                raise ConvertError("[yolo] cannot be the first layer")
            out_override[i - 1] = f"yolo_{k}"
            k += 1
    if k == 0:
        raise ConvertError("the cfg has no [yolo] layer")

    # Per layer: (tensor name, C, H, W, routable)
    outs: list[tuple[str, int, int, int, bool]] = []
    cur = ("images", 3, height, width, True)
    heads = []

    def resolve(i: int, idx: int, where: str) -> int:
        j = i + idx if idx < 0 else idx
        if not 0 <= j < i:
            raise ConvertError(f"{where}: layer reference {idx} resolves to {j}, out of range")
        if not outs[j][4]:
            raise ConvertError(f"{where}: layer {j} cannot be used as an input")
        return j

    for i, (name, kv) in enumerate(layers):
        o = Opts(name, i, kv)
        base = f"l{i:03d}_{name[:4]}"
        x, c, h, w, prev_ok = cur
        final = out_override.get(i, f"{base}_out")
        if not prev_ok and name != "route":
            raise ConvertError(f"{o._where()}: only a [route] may follow a [yolo] layer")

        if name in ("convolutional", "conv"):
            n = o.int("filters", 1)
            ksize = o.int("size", 1)
            stride = o.int("stride", 1)
            for key, default in (("stride_x", "-1"), ("stride_y", "-1")):
                if key in kv and int(kv[key]) not in (-1, stride):
                    raise ConvertError(f"{o._where()}: non-square strides are not supported")
            o.require_default("groups", "1")
            o.require_default("dilation", "1")
            o.require_default("antialiasing", "0")
            o.require_default("binary", "0")
            o.require_default("xnor", "0")
            if "share_index" in kv:
                raise ConvertError(f"{o._where()}: share_index is not supported")
            pad = ksize // 2 if o.int("pad", 0) else o.int("padding", 0)
            bn = o.int("batch_normalize", 0)
            act = o.str("activation", "logistic")

            bias = weights.take(n, f"{o._where()} biases")
            if bn:
                scales = weights.take(n, f"{o._where()} scales")
                mean = weights.take(n, f"{o._where()} rolling mean")
                var = weights.take(n, f"{o._where()} rolling variance")
            wts = weights.take(n * c * ksize * ksize, f"{o._where()} weights")
            wts = wts.reshape(n, c, ksize, ksize)
            if bn:
                wts, bias = fold_batchnorm(wts, bias, scales, mean, var, bn_mode)
            wname = g.init(f"{base}_w", wts)
            bname = g.init(f"{base}_b", bias)
            conv_out = final if act == "linear" else f"{base}_conv"
            g.node(
                "Conv",
                [x, wname, bname],
                conv_out,
                f"{base}_conv",
                kernel_shape=[ksize, ksize],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                dilations=[1, 1],
                group=1,
            )
            t = activation(g, act, conv_out, base, final)
            oh = (h + 2 * pad - ksize) // stride + 1
            ow = (w + 2 * pad - ksize) // stride + 1
            if oh <= 0 or ow <= 0:
                raise ConvertError(f"{o._where()}: output would be empty")
            cur = (t, n, oh, ow, True)

        elif name == "maxpool":
            stride = o.int("stride", 1)
            ksize = o.int("size", stride)
            padding = o.int("padding", ksize - 1)
            for key in ("stride_x", "stride_y"):
                if key in kv and int(kv[key]) != stride:
                    raise ConvertError(f"{o._where()}: non-square strides are not supported")
            o.require_default("maxpool_depth", "0")
            o.require_default("antialiasing", "0")
            oh = (h + padding - ksize) // stride + 1
            ow = (w + padding - ksize) // stride + 1
            # darknet starts the first window at -padding/2 and treats outside as -inf.
            pb = padding // 2
            pe_h = max(0, (oh - 1) * stride + ksize - h - pb)
            pe_w = max(0, (ow - 1) * stride + ksize - w - pb)
            attrs = dict(kernel_shape=[ksize, ksize], strides=[stride, stride])
            if pb or pe_h or pe_w:
                attrs["pads"] = [pb, pb, pe_h, pe_w]
            t = g.node("MaxPool", [x], final, f"{base}_maxpool", **attrs)
            # Cross-check the ONNX output size formula against darknet's.
            if (h + pb + pe_h - ksize) // stride + 1 != oh or (w + pb + pe_w - ksize) // stride + 1 != ow:
                raise ConvertError(f"{o._where()}: cannot express darknet padding in ONNX")
            cur = (t, c, oh, ow, True)

        elif name == "route":
            refs = [resolve(i, v, o._where()) for v in o.ints("layers")]
            groups = o.int("groups", 1)
            group_id = o.int("group_id", 0)
            if groups < 1 or not 0 <= group_id < groups:
                raise ConvertError(f"{o._where()}: bad groups/group_id")
            parts = []
            oc = 0
            rh, rw = outs[refs[0]][2], outs[refs[0]][3]
            for r in refs:
                rt, rc, lh, lw, _ = outs[r]
                if (lh, lw) != (rh, rw):
                    raise ConvertError(f"{o._where()}: routed layers differ in size")
                if rc % groups:
                    raise ConvertError(f"{o._where()}: {rc} channels not divisible by {groups}")
                part = rc // groups
                if groups == 1:
                    parts.append(rt)
                else:
                    start = group_id * part
                    parts.append(
                        g.node(
                            "Slice",
                            [rt, g.const_i64([start]), g.const_i64([start + part]), g.const_i64([1])],
                            f"{base}_slice{r}",
                            f"{base}_slice{r}",
                        )
                    )
                oc += part
            if len(parts) == 1:
                if parts[0] == outs[refs[0]][0] and i in out_override:
                    t = g.node("Identity", parts, final, f"{base}_identity")
                elif parts[0] == outs[refs[0]][0]:
                    t = parts[0]  # plain alias, no node needed
                else:
                    # rename the slice output to the layer output
                    g.nodes[-1].output[0] = final
                    g.nodes[-1].name = f"{base}_slice"
                    t = final
            else:
                t = g.node("Concat", parts, final, f"{base}_concat", axis=1)
            cur = (t, oc, rh, rw, True)

        elif name == "upsample":
            stride = o.int("stride", 2)
            scale = o.float("scale", 1.0)
            if stride < 1:
                raise ConvertError(f"{o._where()}: negative (downsampling) stride is not supported")
            up_out = final if scale == 1.0 else f"{base}_resize"
            t = g.node(
                "Resize",
                [x, "", g.const_f32([1.0, 1.0, float(stride), float(stride)])],
                up_out,
                f"{base}_resize",
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
            if scale != 1.0:
                t = g.node("Mul", [t, g.const_f32([scale])], final, f"{base}_scale")
            cur = (t, c, h * stride, w * stride, True)

        elif name == "shortcut":
            refs = [resolve(i, v, o._where()) for v in o.ints("from")]
            if len(refs) != 1:
                raise ConvertError(f"{o._where()}: multi-input shortcut is not supported")
            o.require_default("weights_type", "none")
            rt, rc, rh, rw, _ = outs[refs[0]]
            if (rc, rh, rw) != (c, h, w):
                raise ConvertError(f"{o._where()}: shortcut between different shapes is not supported")
            act = o.str("activation", "linear")
            add_out = final if act == "linear" else f"{base}_add"
            t = g.node("Add", [x, rt], add_out, f"{base}_add")
            t = activation(g, act, t, base, final)
            cur = (t, c, h, w, True)

        elif name in ("yolo",):
            num = o.int("num", 1)
            mask = o.ints("mask") if "mask" in kv else list(range(num))
            all_anchors = []
            for v in o.str("anchors", "").split(","):
                if v.strip():
                    f = float(v)
                    all_anchors.append(int(f) if f.is_integer() else f)
            classes = o.int("classes", 20)
            if len(all_anchors) != 2 * num:
                raise ConvertError(f"{o._where()}: num={num} but {len(all_anchors) // 2} anchors")
            if any(not 0 <= m < num for m in mask):
                raise ConvertError(f"{o._where()}: mask {mask} out of range for num={num}")
            o.require_default("new_coords", "0")
            if c != len(mask) * (5 + classes):
                raise ConvertError(
                    f"{o._where()}: input has {c} channels, expected {len(mask)}*(5+{classes})"
                )
            if height % h or width % w or height // h != width // w:
                raise ConvertError(f"{o._where()}: network size is not a multiple of the grid")
            heads.append(
                {
                    "name": out_override[i - 1],
                    "stride": height // h,
                    "grid": [h, w],
                    "channels": c,
                    "mask": mask,
                    "anchors": [[all_anchors[2 * m], all_anchors[2 * m + 1]] for m in mask],
                    "classes": classes,
                    "scale_x_y": o.float("scale_x_y", 1.0),
                }
            )
            # A [yolo] layer has no tensor of its own in our graph; nothing may route to it.
            cur = (x, c, h, w, False)

        else:
            raise ConvertError(f"layer {i}: [{name}] is not supported")

        outs.append(cur)

    if weights.remaining():
        raise ConvertError(
            f"{weights.remaining()} unused floats left in the weights file: cfg and weights do not match"
        )

    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])
    outputs = [
        helper.make_tensor_value_info(hd["name"], TensorProto.FLOAT, [1, hd["channels"], *hd["grid"]])
        for hd in heads
    ]
    graph = helper.make_graph(g.nodes, "darknet_yolo", [inp], outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        producer_name="opennvr-edge darknet2onnx",
        producer_version=CONVERTER_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    model.doc_string = (
        "darknet YOLO converted by opennvr-edge models/darknet2onnx.py. Input: RGB 0..1 "
        "letterboxed NCHW. Outputs: raw conv outputs feeding each [yolo] layer."
    )
    meta = {
        "converter": f"opennvr-edge darknet2onnx {CONVERTER_VERSION}",
        "cfg_sha256": sha256_file(cfg_path),
        "weights_sha256": sha256_file(weights_path),
        "weights_version": ".".join(str(v) for v in weights.version),
        "batchnorm_fold": bn_mode,
        "input_size": str(width),
    }
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    onnx.checker.check_model(model, full_check=True)
    info = {"width": width, "height": height, "heads": heads}
    return model, info


def sidecar(info_by_size: list[dict], labels: str) -> dict:
    """The decoder description (see models/README.md)."""
    first = info_by_size[0]
    heads = first["heads"]
    scale = {hd["scale_x_y"] for hd in heads}
    classes = {hd["classes"] for hd in heads}
    if len(scale) != 1 or len(classes) != 1:
        raise ConvertError("yolo layers disagree on scale_x_y/classes; sidecar cannot express that")
    if len(info_by_size) != 1:
        raise ConvertError("one sidecar per model file")
    return {
        "format": "yolo-darknet",
        "input": "images",
        "input_size": [first["width"], first["height"]],
        "labels": labels,
        "outputs": [
            {"name": hd["name"], "stride": hd["stride"], "anchors": hd["anchors"]} for hd in heads
        ],
        "scale_x_y": scale.pop(),
        "classes": classes.pop(),
        "letterbox": True,
        "pad_value": 0.5,
    }


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cfg", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--size", type=int, help="square network input size (default: the cfg's)")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--sidecar", help="also write the decoder JSON here")
    ap.add_argument("--labels", default="coco.names", help="labels file name put in the sidecar")
    ap.add_argument("--bn-mode", choices=BN_MODES, default="alexeyab", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.size is not None and (args.size <= 0 or args.size % 32):
        ap.error("--size must be a positive multiple of 32")
    try:
        model, info = convert(args.cfg, args.weights, args.size, args.bn_mode)
        write_atomic(args.out, model.SerializeToString())
        if args.sidecar:
            doc = sidecar([info], args.labels)
            write_atomic(args.sidecar, (json.dumps(doc, indent=2) + "\n").encode())
    except ConvertError as e:
        print(f"darknet2onnx: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
