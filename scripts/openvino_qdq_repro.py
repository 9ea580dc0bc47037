#!/usr/bin/env python3
"""Minimal repro of the OpenVINO bug behind issue 12 (kestrel's int8 QDQ export of
mobilenetv2_100 ran wrongly in OpenVINO, 0 of 64 top-1, while onnxruntime agreed).

The pattern: an int8 conv in QDQ form (QuantizeLinear -> DequantizeLinear on the activation,
DequantizeLinear on int8 weights) with all-zero biases (or none), whose output, with no
activation after it, is read by more than one node, one of them an Add (MobileNetV2's and
EfficientNet's linear-bottleneck output is the next block's input and its residual; the biases
are zero at random init, BatchNorm folded from its default statistics). With a dynamic batch
dimension, OpenVINO's CPU plugin
(2026.4.1, f32 precision hint) returns that conv's output multiplied by its dequantization scale
(input scale times weight scale) a second time. The same file with a static batch, with any
non-zero bias, or compiled with the CPU plugin's internal LP_TRANSFORMS_MODE=NO (no low-precision
transformations), is right; so is onnxruntime. The graphs pass onnx.checker's full check.

What compiled_model.get_runtime_model() shows for add_self: the low-precision transformations
move the dequantization Multiply behind the int8 conv and clone it once per reader; with static
shapes the clones stay separate (a Snippets subgraph feeding the Add), with a dynamic batch both
are fused into the conv as post-ops (originalLayersNames "conv, Multiply_N_1, Multiply_N"),
i.e. applied in series to the one output both readers get.

A second bug, static batch too: an int8 conv with all-zero biases and per-channel weight scales,
then Relu, MaxPool, Clip(lo, hi) and QuantizeLinear (ResNet's stem at random init, with the Clip
that kestrel used to write for the 7-bit range): OpenVINO quantizes the pooled values with the
wrong scale in all channels but the first. A Min(x, hi) instead of the Clip, equivalent since
QuantizeLinear saturates at u8 0 exactly where the Clip's lower bound -scale*zero is, runs right.

kestrel's exporter avoids the first pattern: such a conv (zero biases, output read by more than one
op) gets its weights as the fp32 values that DequantizeLinear would make (bit for bit the same numbers), so OpenVINO runs it in fp32 on the
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
    def __init__(self, seed=0, hw=HW):
        self.nodes, self.inits, self.rng, self.k = [], [], np.random.default_rng(seed), 0
        self.hw = hw

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

    def conv(self, x, int8_weights=True, bias=0.0):
        """1x1 conv, per-channel int8 weights (zero points 0), every bias `bias`."""
        q = self.rng.integers(-127, 128, (C, C, 1, 1)).astype(np.int8)
        scale = (self.rng.random(C) * 0.004 + 0.005).astype(np.float32)
        if int8_weights:
            w = self.op("DequantizeLinear",
                        [self.init(q), self.init(scale), self.init(np.zeros(C, np.int8))], axis=0)
        else:  # DequantizeLinear's own output, (q - 0) * scale in f32
            w = self.init(q.astype(np.float32) * scale[:, None, None, None])
        return self.op("Conv", [x, w, self.init(np.full(C, bias, np.float32))])

    def model(self, out, dynamic_batch):
        batch = "batch" if dynamic_batch else 1
        g = helper.make_graph(
            self.nodes, "repro",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, C, self.hw, self.hw])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, C, self.hw, self.hw])],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def add_self(g, int8_weights=True, bias=0.0):
    """y = conv(qdq(x)); y + y"""
    y = g.conv(g.qdq("x"), int8_weights, bias)
    return g.op("Add", [y, y])


def inverted_residual(g, int8_weights=True, bias=0.0):
    """y = conv(qdq(x)); y + conv(qdq'(y)) -- MobileNetV2's block after a linear bottleneck"""
    y = g.conv(g.qdq("x"), int8_weights, bias)
    return g.op("Add", [g.conv(g.qdq(y, 0.05, 60), True, bias), y])


def with_relu(g, int8_weights=True, bias=0.0):
    """r = relu(conv(qdq(x))); r + conv(qdq'(r)) -- ResNet-like: the conv has one reader"""
    r = g.op("Relu", [g.conv(g.qdq("x"), int8_weights, bias)])
    return g.op("Add", [g.conv(g.qdq(r, 0.05, 0), True, bias), r])


def stem_pool(g, int8_weights=True, bias=0.0, low_clip=True):
    """q(clip(maxpool(relu(conv(qdq(x)))))) -> conv"""
    p = g.op("MaxPool", [g.op("Relu", [g.conv(g.qdq("x"), int8_weights, bias)])],
             kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    s, hi = 0.02, g.init(np.array(0.02 * 127, np.float32))
    top = (g.op("Clip", [p, g.init(np.array(-0.0, np.float32)), hi]) if low_clip
           else g.op("Min", [p, hi]))
    return g.conv(g.qdq(top, s, 0), True, bias)


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
        for label, int8_weights, bias, dynamic, config in [
            ("dynamic batch", True, 0.0, True, {}),
            ("static batch", True, 0.0, False, {}),
            ("dynamic batch, biases 0.01", True, 0.01, True, {}),
            ("dynamic batch, LP_TRANSFORMS_MODE=NO", True, 0.0, True, {"LP_TRANSFORMS_MODE": "NO"}),
            ("dynamic batch, kestrel encoding", False, 0.0, True, {}),
        ]:
            g = Graph()
            m = g.model(pattern(g, int8_weights, bias), dynamic)
            e = rel_err(m, x, config)
            bad = e > 1e-3
            wrong += bad and dynamic and int8_weights and not bias and not config
            print(f"  {pattern.__name__:18s} {label:40s} {e:.1e}{'  WRONG' if bad else ''}")
    x4 = (np.random.default_rng(1).random((1, C, 4, 4)) * 3).astype(np.float32)
    for label, low_clip, bias, dynamic in [
        ("Clip, static batch", True, 0.0, False),
        ("Clip, dynamic batch", True, 0.0, True),
        ("Clip, biases 0.01", True, 0.01, False),
        ("Min (kestrel encoding)", False, 0.0, False),
    ]:
        g = Graph(hw=4)
        m = g.model(stem_pool(g, True, bias, low_clip), dynamic)
        e = rel_err(m, x4, {})
        bad = e > 1e-3
        wrong += bad and low_clip and not bias
        print(f"  {'stem_pool':18s} {label:40s} {e:.1e}{'  WRONG' if bad else ''}")
    print("bug present" if wrong else "bug not present in this OpenVINO")
    sys.exit(0)


if __name__ == "__main__":
    main()
