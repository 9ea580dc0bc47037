#!/usr/bin/env python3
"""Minimal repro of the OpenVINO bug behind issue 12 (kestrel's int8 QDQ export of
mobilenetv2_100 ran wrongly in OpenVINO, 0 of 64 top-1, while onnxruntime agreed).

The pattern: an int8 conv in QDQ form (QuantizeLinear -> DequantizeLinear on the activation,
DequantizeLinear on int8 weights), whose output, with no activation after it, is read by more
than one node, one of them an Add (MobileNetV2's and EfficientNet's linear-bottleneck output is
the next block's input and its residual). With a dynamic batch dimension, OpenVINO's CPU plugin
(2026.4.1, f32 precision hint) returns that conv's output multiplied by its dequantization scale
(input scale times weight scale) a second time. The same file with a static batch, or compiled
with the CPU plugin's internal LP_TRANSFORMS_MODE=NO (no low-precision transformations), is
right; so is onnxruntime. The graphs pass onnx.checker's full check.

What the low-precision transformations leave (see the runtime model): the dequantization Multiply
moved behind the conv is cloned once per reader; with static shapes the clones stay separate
(a Snippets subgraph), with a dynamic batch the CPU plugin fuses both clones into the conv as
post-ops in series.

kestrel's exporter avoids the pattern: such a conv gets its weights as the fp32 values that
DequantizeLinear would make (bit for bit the same numbers), so OpenVINO runs it in fp32 on the
dequantized activation ("kestrel encoding" below).

    python3 scripts/openvino_qdq_repro.py      # needs onnx, onnxruntime, openvino, numpy
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
from onnx import TensorProto, helper, numpy_helper

C, HW = 4, 2


class Graph:
    def __init__(self, seed=0):
        self.nodes, self.inits, self.rng, self.k = [], [], np.random.default_rng(seed), 0

    def init(self, arr):
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, kind, inputs, **attrs):
        self.k += 1
        out = f"{kind.lower()}{self.k}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def qdq(self, x, scale=0.03, zero=0):
        s, z = self.init(np.array(scale, np.float32)), self.init(np.array(zero, np.uint8))
        return self.op("DequantizeLinear", [self.op("QuantizeLinear", [x, s, z]), s, z])

    def conv(self, x, int8_weights=True):
        """1x1 conv, per-channel int8 weights (zero points 0), zero bias."""
        q = self.rng.integers(-127, 128, (C, C, 1, 1)).astype(np.int8)
        scale = (self.rng.random(C) * 0.004 + 0.005).astype(np.float32)
        if int8_weights:
            w = self.op("DequantizeLinear",
                        [self.init(q), self.init(scale), self.init(np.zeros(C, np.int8))], axis=0)
        else:  # DequantizeLinear's own output, (q - 0) * scale in f32
            w = self.init(q.astype(np.float32) * scale[:, None, None, None])
        return self.op("Conv", [x, w, self.init(np.zeros(C, np.float32))])

    def model(self, out, dynamic_batch):
        batch = "batch" if dynamic_batch else 1
        g = helper.make_graph(
            self.nodes, "repro",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, C, HW, HW])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, C, HW, HW])],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def add_self(g, int8_weights=True):
    """y = conv(qdq(x)); y + y"""
    y = g.conv(g.qdq("x"), int8_weights)
    return g.op("Add", [y, y])


def inverted_residual(g, int8_weights=True):
    """y = conv(qdq(x)); y + conv(qdq'(y)) -- MobileNetV2's block after a linear bottleneck"""
    y = g.conv(g.qdq("x"), int8_weights)
    return g.op("Add", [g.conv(g.qdq(y, 0.05, 60)), y])


def with_relu(g, int8_weights=True):
    """r = relu(conv(qdq(x))); r + conv(qdq'(r)) -- ResNet-like: the conv has one reader"""
    r = g.op("Relu", [g.conv(g.qdq("x"), int8_weights)])
    return g.op("Add", [g.conv(g.qdq(r, 0.05, 0)), r])


def rel_err(m, x, config):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(m.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    core = ov.Core()
    got = core.compile_model(core.read_model(m.SerializeToString(), b""), "CPU",
                             {"INFERENCE_PRECISION_HINT": "f32", **config})([x])[0]
    return float(np.abs(got - want).max() / np.abs(want).max())


def main():
    x = (np.random.default_rng(1).random((1, C, HW, HW)) * 3).astype(np.float32)
    print(f"OpenVINO {ov.__version__}, onnxruntime {ort.__version__}; "
          "max|OpenVINO - onnxruntime (no optimizations)| / max|onnxruntime|")
    wrong = 0
    for pattern in [add_self, inverted_residual, with_relu]:
        for label, int8_weights, dynamic, config in [
            ("dynamic batch", True, True, {}),
            ("static batch", True, False, {}),
            ("dynamic batch, LP_TRANSFORMS_MODE=NO", True, True, {"LP_TRANSFORMS_MODE": "NO"}),
            ("dynamic batch, kestrel encoding", False, True, {}),
        ]:
            g = Graph()
            m = g.model(pattern(g, int8_weights), dynamic)
            e = rel_err(m, x, config)
            bad = e > 1e-3
            wrong += bad and dynamic and int8_weights and not config
            print(f"  {pattern.__name__:18s} {label:40s} {e:.1e}{'  WRONG' if bad else ''}")
    print("bug present" if wrong else "bug not present in this OpenVINO")
    sys.exit(0)


if __name__ == "__main__":
    main()
