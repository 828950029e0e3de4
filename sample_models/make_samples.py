#!/usr/bin/env python
"""Generate the small sample ONNX models shipped in ``sample_models/``.

Deterministic: every model is built from its own ``numpy.random.default_rng``
seed with onnx.helper / onnx.numpy_helper only (no torch), and nothing that
varies between runs (time, paths, library versions) goes into the protos, so
running the script twice writes byte-identical files.

Usage::

    python sample_models/make_samples.py            # writes next to this file
    python sample_models/make_samples.py --out DIR  # writes into DIR

Models (see README.md in this folder for what ``bnfold inspect`` should find):

* ``resnet_small.onnx``           - tiny ResNet, 7 BN (incl. a depthwise conv + BN)
* ``mlp_bn1d.onnx``               - MLP with BatchNorm1d after Gemm / Gemm / MatMul+Add, 3 BN
* ``convtranspose_decoder.onnx``  - ConvTranspose (+group=2) + BN decoder, 2 BN
* ``defects.onnx``                - one audit defect per BN, plus ``bn_clean``, 9 BN
* ``fp16_overflow.onnx``          - float16 model whose first BN overflows fp16 when folded, 2 BN
* ``mixed_fp16_bn15.onnx``        - opset 15, fp16 activations, fp32 BN parameters, 2 BN
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent

IR_VERSION = 8  # onnx 1.23 would write IR 14 by default; onnxruntime 1.31 refuses it.
OPSET = 17
PRODUCER = "bnfold.sample_models"
PRODUCER_VERSION = "1"
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # ONNX convention (PyTorch momentum 0.1 == ONNX 0.9)


# --------------------------------------------------------------------------- helpers
class GraphBuilder:
    """Collects nodes and initializers with PyTorch-export-like names."""

    def __init__(self, rng: np.random.Generator, dtype=np.float32):
        self.rng = rng
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    # ---- tensors
    def init(self, name: str, arr: np.ndarray, dtype=None) -> str:
        dt = self.dtype if dtype is None else dtype
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr).astype(dt), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))

    # ---- random "trained-looking" parameters
    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return self.rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)

    def bn_stats(self, c: int) -> dict[str, np.ndarray]:
        rng = self.rng
        mean_sd = rng.uniform(0.3, 0.8)
        return {
            "weight": rng.uniform(0.4, 1.6, size=c),
            "bias": rng.normal(0.0, 0.3, size=c),
            "running_mean": rng.normal(0.0, mean_sd, size=c),
            # lognormal around ~0.5, clipped into a realistic [0.05, 3] band
            "running_var": np.clip(rng.lognormal(np.log(0.5), 0.8, size=c), 0.05, 3.0),
        }

    # ---- layers
    def conv(self, name: str, x: str, cin: int, cout: int, k: int, *, stride: int = 1,
             pad: int | None = None, group: int = 1, bias: bool = False,
             weight: np.ndarray | None = None) -> str:
        pad = k // 2 if pad is None else pad
        if weight is None:
            weight = self.he_normal((cout, cin // group, k, k), fan_in=(cin // group) * k * k)
        inputs = [x, self.init(f"{name}.weight", weight)]
        if bias:
            inputs.append(self.init(f"{name}.bias", self.rng.normal(0.0, 0.05, size=cout)))
        out = f"{name}.out"
        self.node("Conv", inputs, [out], name, kernel_shape=[k, k], strides=[stride, stride],
                  pads=[pad] * 4, dilations=[1, 1], group=group)
        return out

    def bn(self, name: str, x: str, c: int, *, stats: dict[str, np.ndarray] | None = None,
           param_dtype=None, stat_dtype=None, epsilon: float = BN_EPS,
           momentum: float = BN_MOMENTUM, mean_input: str | None = None, **attrs) -> str:
        p = self.bn_stats(c) if stats is None else stats
        ins = [
            x,
            self.init(f"{name}.weight", p["weight"], param_dtype),
            self.init(f"{name}.bias", p["bias"], param_dtype),
            mean_input if mean_input is not None
            else self.init(f"{name}.running_mean", p["running_mean"], stat_dtype),
            self.init(f"{name}.running_var", p["running_var"], stat_dtype),
        ]
        out = f"{name}.out"
        outs = [out]
        if attrs.get("training_mode"):
            # onnx's shape inference insists on 3 outputs when training_mode=1
            outs += [f"{name}.running_mean_out", f"{name}.running_var_out"]
        self.node("BatchNormalization", ins, outs, name, epsilon=epsilon, momentum=momentum,
                  **attrs)
        return out

    def act(self, op: str, name: str, x: str, **attrs) -> str:
        out = f"{name}.out"
        self.node(op, [x], [out], name, **attrs)
        return out

    def relu(self, name: str, x: str) -> str:
        return self.act("Relu", name, x)


def _model(b: GraphBuilder, name: str, inputs, outputs, *, opset: int = OPSET,
           doc: str = "") -> onnx.ModelProto:
    graph = helper.make_graph(b.nodes, name, inputs, outputs, initializer=b.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=doc,
    )
    return model


# --------------------------------------------------------------------------- models
def make_resnet_small(seed: int = 1001) -> onnx.ModelProto:
    b = GraphBuilder(np.random.default_rng(seed))
    x = "input"
    # stem
    h = b.conv("conv1", x, 3, 16, 3)
    h = b.bn("bn1", h, 16)
    h = b.relu("relu", h)
    # layer1.0: identity basic block
    idn = h
    t = b.conv("layer1.0.conv1", h, 16, 16, 3)
    t = b.bn("layer1.0.bn1", t, 16)
    t = b.relu("layer1.0.relu1", t)
    t = b.conv("layer1.0.conv2", t, 16, 16, 3)
    t = b.bn("layer1.0.bn2", t, 16)
    b.node("Add", [t, idn], ["layer1.0.add.out"], "layer1.0.add")
    h = b.relu("layer1.0.relu2", "layer1.0.add.out")
    # layer2.0: downsampling basic block with 1x1 stride-2 projection shortcut
    t = b.conv("layer2.0.conv1", h, 16, 32, 3, stride=2)
    t = b.bn("layer2.0.bn1", t, 32)
    t = b.relu("layer2.0.relu1", t)
    t = b.conv("layer2.0.conv2", t, 32, 32, 3)
    t = b.bn("layer2.0.bn2", t, 32)
    s = b.conv("layer2.0.downsample.0", h, 16, 32, 1, stride=2, pad=0)
    s = b.bn("layer2.0.downsample.1", s, 32)
    b.node("Add", [t, s], ["layer2.0.add.out"], "layer2.0.add")
    h = b.relu("layer2.0.relu2", "layer2.0.add.out")
    # layer3.0: depthwise 3x3 conv (group == channels) + BN + Relu
    h = b.conv("layer3.0.dwconv", h, 32, 32, 3, group=32)
    h = b.bn("layer3.0.bn", h, 32)
    h = b.relu("layer3.0.relu", h)
    # head
    b.node("GlobalAveragePool", [h], ["avgpool.out"], "avgpool")
    b.node("Flatten", ["avgpool.out"], ["flatten.out"], "flatten", axis=1)
    fc_w = b.rng.normal(0.0, np.sqrt(1.0 / 32), size=(10, 32))
    fc_b = b.rng.normal(0.0, 0.05, size=10)
    b.node("Gemm", ["flatten.out", b.init("fc.weight", fc_w), b.init("fc.bias", fc_b)],
           ["logits"], "fc", alpha=1.0, beta=1.0, transB=1)
    return _model(
        b, "resnet_small",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        doc="Tiny ResNet: stem, identity block, stride-2 block with projection, depthwise conv.",
    )


def make_mlp_bn1d(seed: int = 1002) -> onnx.ModelProto:
    b = GraphBuilder(np.random.default_rng(seed))
    rng = b.rng
    # fc1: Gemm transB=1, weight [out, in] like torch.nn.Linear
    w1 = b.he_normal((128, 64), fan_in=64)
    b.node("Gemm", ["features", b.init("fc1.weight", w1),
                    b.init("fc1.bias", rng.normal(0.0, 0.05, size=128))],
           ["fc1.out"], "fc1", alpha=1.0, beta=1.0, transB=1)
    h = b.bn("bn1", "fc1.out", 128)
    h = b.relu("relu1", h)
    # fc2: Gemm transB=0, weight [in, out]
    w2 = b.he_normal((128, 64), fan_in=128)
    b.node("Gemm", [h, b.init("fc2.weight", w2),
                    b.init("fc2.bias", rng.normal(0.0, 0.05, size=64))],
           ["fc2.out"], "fc2", alpha=1.0, beta=1.0, transB=0)
    h = b.bn("bn2", "fc2.out", 64)
    h = b.relu("relu2", h)
    # fc3: MatMul + Add (how torch exports Linear on >2-D or with some settings)
    w3 = b.he_normal((64, 32), fan_in=64)
    b.node("MatMul", [h, b.init("fc3.weight", w3)], ["fc3.matmul.out"], "fc3.matmul")
    b.node("Add", ["fc3.matmul.out", b.init("fc3.bias", rng.normal(0.0, 0.05, size=32))],
           ["fc3.out"], "fc3.add")
    h = b.bn("bn3", "fc3.out", 32)
    h = b.relu("relu3", h)
    # classifier
    w4 = rng.normal(0.0, np.sqrt(1.0 / 32), size=(10, 32))
    b.node("Gemm", [h, b.init("classifier.weight", w4),
                    b.init("classifier.bias", rng.normal(0.0, 0.05, size=10))],
           ["logits"], "classifier", alpha=1.0, beta=1.0, transB=1)
    return _model(
        b, "mlp_bn1d",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        doc="MLP with BatchNorm1d after Gemm(transB=1), Gemm(transB=0) and MatMul+Add.",
    )


def make_convtranspose_decoder(seed: int = 1003) -> onnx.ModelProto:
    b = GraphBuilder(np.random.default_rng(seed))
    rng = b.rng
    # ConvTranspose weight layout: [C_in, C_out / group, kH, kW]
    w1 = b.he_normal((32, 16, 4, 4), fan_in=32 * 4 * 4 // 4)  # stride-2 k4: ~4 taps/output
    b.node("ConvTranspose", ["latent", b.init("decoder.0.weight", w1),
                             b.init("decoder.0.bias", rng.normal(0.0, 0.05, size=16))],
           ["decoder.0.out"], "decoder.0", kernel_shape=[4, 4], strides=[2, 2],
           pads=[1, 1, 1, 1], dilations=[1, 1], group=1)
    h = b.bn("decoder.1", "decoder.0.out", 16)
    h = b.relu("decoder.2", h)
    w2 = b.he_normal((16, 4, 3, 3), fan_in=8 * 9 // 4)
    b.node("ConvTranspose", [h, b.init("decoder.3.weight", w2)],
           ["decoder.3.out"], "decoder.3", kernel_shape=[3, 3], strides=[2, 2],
           pads=[1, 1, 1, 1], output_padding=[1, 1], dilations=[1, 1], group=2)
    h = b.bn("decoder.4", "decoder.3.out", 8)
    h = b.relu("decoder.5", h)
    h = b.conv("to_rgb", h, 8, 3, 1, pad=0, bias=True)
    b.node("Sigmoid", [h], ["image"], "sigmoid")
    return _model(
        b, "convtranspose_decoder",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, [1, 32, 8, 8])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        doc="Decoder: ConvTranspose(+bias)+BN, grouped ConvTranspose(no bias)+BN, 1x1 Conv.",
    )


DEFECT_BNS = [
    # (bn name, audit finding it carries)
    ("bn_nonfinite", "non-finite: NaN in running_var[3], +Inf in gamma[5]"),
    ("bn_variance_negative", "variance-negative: running_var[1] = running_var[6] = -0.25"),
    ("bn_training_mode", "training-mode: training_mode=1 (opset 15), 3 outputs, extra 2 unused"),
    ("bn_stats_uninitialized", "stats-uninitialized: running_mean == 0, running_var == 1"),
    ("bn_momentum_suspicious", "momentum-suspicious: momentum=0.1 (PyTorch convention)"),
    ("bn_dead_channel", "dead-channel: gamma[0] = gamma[2] = 0"),
    ("bn_variance_tiny", "variance-tiny: running_var[4] = running_var[7] = 1e-9, eps 1e-5"),
    ("bn_dynamic", "stats-not-constant: running_mean is graph input bn_dynamic.running_mean"),
    ("bn_clean", "clean"),
]


def make_defects(seed: int = 1004) -> onnx.ModelProto:
    b = GraphBuilder(np.random.default_rng(seed))
    c = 8
    h = "input"
    for bn_name, _desc in DEFECT_BNS:
        tag = bn_name[len("bn_"):]
        h = b.conv(f"conv_{tag}", h, c, c, 3)
        st = b.bn_stats(c)
        kw: dict = {}
        if bn_name == "bn_nonfinite":
            st["running_var"][3] = np.nan
            st["weight"][5] = np.inf
        elif bn_name == "bn_variance_negative":
            st["running_var"][[1, 6]] = -0.25
        elif bn_name == "bn_training_mode":
            kw["training_mode"] = 1
        elif bn_name == "bn_stats_uninitialized":
            st["running_mean"] = np.zeros(c)
            st["running_var"] = np.ones(c)
        elif bn_name == "bn_momentum_suspicious":
            kw["momentum"] = 0.1
        elif bn_name == "bn_dead_channel":
            st["weight"][[0, 2]] = 0.0
        elif bn_name == "bn_variance_tiny":
            st["running_var"][[4, 7]] = 1e-9
        elif bn_name == "bn_dynamic":
            kw["mean_input"] = "bn_dynamic.running_mean"
        h = b.bn(bn_name, h, c, stats=st, **kw)
        h = b.relu(f"relu_{tag}", h)
    b.node("GlobalAveragePool", [h], ["pool.out"], "pool")
    b.node("Flatten", ["pool.out"], ["output"], "flatten", axis=1)
    doc = "One BatchNormalization audit defect per BN:\n" + "\n".join(
        f"  {n}: {d}" for n, d in DEFECT_BNS)
    return _model(
        b, "defects",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, 16, 16]),
            helper.make_tensor_value_info("bn_dynamic.running_mean", TensorProto.FLOAT, [c]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c])],
        opset=15,  # training_mode attribute exists since BatchNormalization-14
        doc=doc,
    )


FP16_OVERFLOW_CHANNELS = (1, 4, 6)


def make_fp16_overflow(seed: int = 1005) -> onnx.ModelProto:
    b = GraphBuilder(np.random.default_rng(seed), dtype=np.float16)
    rng = b.rng
    cin, c = 4, 8
    # conv1: weights of magnitude 1..5 (random sign), fp16, with bias
    w1 = rng.uniform(1.0, 5.0, size=(c, cin, 3, 3)) * rng.choice([-1.0, 1.0], size=(c, cin, 3, 3))
    h = b.conv("conv1", "input", cin, c, 3, bias=True, weight=w1)
    st = b.bn_stats(c)
    # The overflow channels: gamma ~ 300, running_var 1e-7 (fp16 subnormal), eps 1e-5:
    # gamma / sqrt(var + eps) ~ 9.4e4 > 65504 already, times |W| in [1, 5] -> folded
    # weights far beyond float16 range.  Other channels fold fine.
    # Note: the *unfolded* BN output of those channels also saturates to +-inf in fp16
    # for almost any input; ReLU6 (Clip 0..6) bounds it so the model output is finite.
    idx = list(FP16_OVERFLOW_CHANNELS)
    st["weight"][idx] = rng.uniform(280.0, 320.0, size=len(idx))
    st["running_var"][idx] = 1e-7
    h = b.bn("bn1", h, c, stats=st)
    b.node("Clip", [h, b.init("relu6.min", np.array(0.0)), b.init("relu6.max", np.array(6.0))],
           ["relu6.out"], "relu6")
    # second, clean block
    h = b.conv("conv2", "relu6.out", c, c, 3, bias=True)
    h = b.bn("bn2", h, c)
    b.node("Relu", [h], ["output"], "relu2")
    return _model(
        b, "fp16_overflow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT16, [1, cin, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT16, [1, c, 8, 8])],
        doc=f"float16 model; folding bn1 overflows fp16 on channels {list(idx)}; bn2 is clean.",
    )


def make_mixed_fp16_bn15(seed: int = 1006) -> onnx.ModelProto:
    b = GraphBuilder(np.random.default_rng(seed), dtype=np.float16)
    f32 = np.float32
    h = b.conv("conv1", "input", 3, 8, 3)
    h = b.bn("bn1", h, 8, param_dtype=f32, stat_dtype=f32)  # T=fp16, T1=T2=fp32
    h = b.relu("relu1", h)
    h = b.conv("conv2", h, 8, 16, 3, stride=2)
    h = b.bn("bn2", h, 16, param_dtype=f32, stat_dtype=f32)
    b.node("Relu", [h], ["output"], "relu2")
    return _model(
        b, "mixed_fp16_bn15",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT16, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT16, [1, 16, 8, 8])],
        opset=15,
        doc="BatchNormalization-15 with float16 X/Y and float32 scale/bias/mean/var.",
    )


MODELS = {
    "resnet_small.onnx": make_resnet_small,
    "mlp_bn1d.onnx": make_mlp_bn1d,
    "convtranspose_decoder.onnx": make_convtranspose_decoder,
    "defects.onnx": make_defects,
    "fp16_overflow.onnx": make_fp16_overflow,
    "mixed_fp16_bn15.onnx": make_mixed_fp16_bn15,
}


def build_all() -> dict[str, onnx.ModelProto]:
    return {fname: fn() for fname, fn in MODELS.items()}


def write_all(out_dir: Path | str = HERE, *, check: bool = True) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fname, model in build_all().items():
        if check:
            onnx.checker.check_model(model, full_check=True)
        p = out / fname
        p.write_bytes(model.SerializeToString(deterministic=True))
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE,
                    help="output folder (default: the folder of this script)")
    args = ap.parse_args(argv)
    for p in write_all(args.out):
        print(f"{p}  {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
