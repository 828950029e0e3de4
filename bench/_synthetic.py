"""Synthetic BatchNormalization cases for bench/peers.py.

Each case is a small model that exercises something a BN folder can get
wrong or skip. ``expect`` says what a correct folder does with it:

* ``fold``  – every BN can (and should) be folded away, outputs unchanged;
* ``keep``  – folding would change the result (training-mode BN, fp16
  overflow): a correct tool leaves the BN in place;
* ``any``   – folding is optional, but the outputs must stay the same.

All models are opset 17, IR version 8 (onnxruntime 1.31 refuses the IR 14
that onnx 1.23's make_model writes by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


@dataclass
class Case:
    name: str
    what: str
    expect: str  # "fold" | "keep" | "any"
    model: onnx.ModelProto


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _init(name: str, arr: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(arr), name)


def _bn_params(rng, c: int, prefix: str, dtype=np.float32):
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.normal(0, 0.5, c).astype(dtype)
    mean = rng.normal(0, 0.5, c).astype(dtype)
    var = rng.uniform(0.2, 2.0, c).astype(dtype)
    names = [f"{prefix}_{k}" for k in ("scale", "B", "mean", "var")]
    inits = [_init(n, a) for n, a in zip(names, (gamma, beta, mean, var))]
    return names, inits


def _model(nodes, inputs, outputs, inits, name: str) -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="bnfold-bench",
    )
    onnx.checker.check_model(m, full_check=True)
    return m


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


F32 = TensorProto.FLOAT
F16 = TensorProto.FLOAT16


def conv_bn() -> Case:
    r = _rng(1)
    W = r.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    B = r.normal(0, 0.1, 8).astype(np.float32)
    bn, bn_i = _bn_params(r, 8, "bn")
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", *bn], ["Y"], epsilon=1e-5),
    ]
    m = _model(nodes, [_vi("X", F32, ["N", 3, 8, 8])], [_vi("Y", F32, ["N", 8, 8, 8])],
               [_init("W", W), _init("B", B), *bn_i], "conv_bn")
    return Case("conv_bn", "Conv+BN", "fold", m)


def convtranspose_group2_bn() -> Case:
    r = _rng(2)
    group, cin, cout = 2, 4, 6
    W = r.normal(0, 0.3, (cin, cout // group, 3, 3)).astype(np.float32)
    B = r.normal(0, 0.1, cout).astype(np.float32)
    bn, bn_i = _bn_params(r, cout, "bn")
    nodes = [
        helper.make_node("ConvTranspose", ["X", "W", "B"], ["c"], group=group, strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", *bn], ["Y"]),
    ]
    m = _model(nodes, [_vi("X", F32, [1, cin, 5, 5])], [_vi("Y", F32, [1, cout, 11, 11])],
               [_init("W", W), _init("B", B), *bn_i], "convT_g2_bn")
    return Case("convT_g2_bn", "ConvTranspose(group=2)+BN", "fold", m)


def gemm_bn() -> Case:
    r = _rng(3)
    K, M = 5, 6
    Bw = r.normal(0, 0.5, (M, K)).astype(np.float32)  # transB=1: (M, K)
    C = r.normal(0, 0.5, M).astype(np.float32)
    bn, bn_i = _bn_params(r, M, "bn")
    nodes = [
        helper.make_node("Gemm", ["X", "Bw", "C"], ["g"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("BatchNormalization", ["g", *bn], ["Y"]),
    ]
    m = _model(nodes, [_vi("X", F32, ["N", K])], [_vi("Y", F32, ["N", M])],
               [_init("Bw", Bw), _init("C", C), *bn_i], "gemm_bn")
    return Case("gemm_bn", "Gemm(transB=1,alpha=.5,beta=2)+BN", "fold", m)


def matmul_add_bn() -> Case:
    r = _rng(4)
    K, M = 5, 6
    W = r.normal(0, 0.5, (K, M)).astype(np.float32)
    b = r.normal(0, 0.5, M).astype(np.float32)
    bn, bn_i = _bn_params(r, M, "bn")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["a"]),
        helper.make_node("BatchNormalization", ["a", *bn], ["Y"]),
    ]
    m = _model(nodes, [_vi("X", F32, ["N", K])], [_vi("Y", F32, ["N", M])],
               [_init("W", W), _init("b", b), *bn_i], "matmul_add_bn")
    return Case("matmul_add_bn", "MatMul+Add+BN (rank 2)", "fold", m)


def conv_bn_bn() -> Case:
    r = _rng(5)
    W = r.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32)
    bn1, bn1_i = _bn_params(r, 6, "bn1")
    bn2, bn2_i = _bn_params(r, 6, "bn2")
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", *bn1], ["b1"]),
        helper.make_node("BatchNormalization", ["b1", *bn2], ["Y"], epsilon=1e-3),
    ]
    m = _model(nodes, [_vi("X", F32, [1, 3, 6, 6])], [_vi("Y", F32, [1, 6, 6, 6])],
               [_init("W", W), *bn1_i, *bn2_i], "conv_bn_bn")
    return Case("conv_bn_bn", "Conv→BN→BN chain", "fold", m)


def conv_expand_bias() -> Case:
    """Bias reaches the Conv through Expand of a constant (dynamo, optimize=False)."""
    r = _rng(6)
    c = 8
    W = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    bn, bn_i = _bn_params(r, c, "bn")
    nodes = [
        helper.make_node("Constant", [], ["bias_val"],
                         value=_init("bias_val_t", np.array([0.25], np.float32))),
        helper.make_node("Constant", [], ["bias_shape"],
                         value=_init("bias_shape_t", np.array([c], np.int64))),
        helper.make_node("Expand", ["bias_val", "bias_shape"], ["bias"]),
        helper.make_node("Conv", ["X", "W", "bias"], ["cv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cv", *bn], ["Y"]),
    ]
    m = _model(nodes, [_vi("X", F32, [1, 3, 8, 8])], [_vi("Y", F32, [1, c, 8, 8])],
               [_init("W", W), *bn_i], "conv_expand_bias")
    return Case("conv_expand_bias", "Conv bias via Expand(Constant)", "fold", m)


def constant_identity_weights() -> Case:
    """Weights and BN statistics from Constant nodes, the weight through Identity."""
    r = _rng(7)
    c = 8
    W = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    B = r.normal(0, 0.1, c).astype(np.float32)
    _, bn_i = _bn_params(r, c, "bn")
    nodes = [
        helper.make_node("Constant", [], ["W_c"], value=_init("W_t", W)),
        helper.make_node("Identity", ["W_c"], ["W_id"]),
        helper.make_node("Constant", [], ["B_c"], value=_init("B_t", B)),
    ]
    names = []
    for t in bn_i:
        nodes.append(helper.make_node("Constant", [], [t.name + "_c"], value=t))
        names.append(t.name + "_c")
    nodes += [
        helper.make_node("Conv", ["X", "W_id", "B_c"], ["cv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cv", *names], ["Y"]),
    ]
    m = _model(nodes, [_vi("X", F32, [1, 3, 8, 8])], [_vi("Y", F32, [1, c, 8, 8])], [],
               "constant_identity")
    return Case("const_identity", "weights via Constant+Identity", "fold", m)


def training_mode_bn() -> Case:
    r = _rng(8)
    c = 6
    W = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    bn, bn_i = _bn_params(r, c, "bn")
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["cv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cv", *bn], ["Y", "run_mean", "run_var"],
                         training_mode=1),
    ]
    m = _model(nodes, [_vi("X", F32, [2, 3, 6, 6])], [_vi("Y", F32, [2, c, 6, 6])],
               [_init("W", W), *bn_i], "training_mode")
    return Case("training_mode", "BN training_mode=1 (batch stats)", "keep", m)


def fp16_overflow() -> Case:
    """fp16 Conv+BN whose folded weights overflow float16 (max 65504).

    X is scaled by 1e-3 first, so the Conv output is O(1) with weights of
    ±1000; the BN multiplies by ~100, giving O(100) outputs. Folded, the
    weights would be ~1e5: inf in float16.
    """
    r = _rng(9)
    c = 4
    W = (r.choice([-1.0, 1.0], (c, 2, 3, 3)) * 1000.0).astype(np.float16)
    gamma = np.full(c, 100.0, np.float16)
    beta = r.normal(0, 0.5, c).astype(np.float16)
    mean = r.normal(0, 0.5, c).astype(np.float16)
    var = np.ones(c, np.float16)
    nodes = [
        helper.make_node("Mul", ["X", "k"], ["xs"]),
        helper.make_node("Conv", ["xs", "W"], ["cv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cv", "g", "b", "m", "v"], ["Y"]),
    ]
    inits = [_init("k", np.array(1e-3, np.float16)), _init("W", W), _init("g", gamma),
             _init("b", beta), _init("m", mean), _init("v", var)]
    m = _model(nodes, [_vi("X", F16, [1, 2, 6, 6])], [_vi("Y", F16, [1, c, 6, 6])], inits,
               "fp16_overflow")
    return Case("fp16_overflow", "fp16 Conv+BN, folding overflows", "keep", m)


def bn15_mixed_precision() -> Case:
    """BatchNormalization-15 with float16 activations and float32 statistics."""
    r = _rng(10)
    c = 8
    W = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float16)
    B = r.normal(0, 0.1, c).astype(np.float16)
    bn, bn_i = _bn_params(r, c, "bn", dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["cv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cv", *bn], ["Y"]),
    ]
    m = _model(nodes, [_vi("X", F16, [1, 3, 8, 8])], [_vi("Y", F16, [1, c, 8, 8])],
               [_init("W", W), _init("B", B), *bn_i], "bn15_mixed")
    return Case("bn15_mixed", "BN-15 fp16 X, fp32 stats", "fold", m)


def bn_in_if_branch() -> Case:
    r = _rng(11)
    c = 6
    W1 = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    W2 = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    bn1, bn1_i = _bn_params(r, c, "bn1")
    bn2, bn2_i = _bn_params(r, c, "bn2")
    out_t = [_vi("Yb", F32, [1, c, 6, 6])]
    then_g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c1", *bn1], ["Yb"])],
        "then", [], out_t)
    else_g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c2", *bn2], ["Yb"])],
        "else", [], [_vi("Yb", F32, [1, c, 6, 6])])
    nodes = [helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g)]
    m = _model(nodes,
               [_vi("X", F32, [1, 3, 6, 6]), _vi("cond", TensorProto.BOOL, [])],
               [_vi("Y", F32, [1, c, 6, 6])],
               [_init("W1", W1), _init("W2", W2), *bn1_i, *bn2_i], "bn_in_if")
    return Case("bn_in_if", "BN inside both If branches", "fold", m)


def conv_fanout() -> Case:
    """The Conv output feeds the BN and a second consumer: scaling W in place is wrong."""
    r = _rng(12)
    c = 6
    W = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    bn, bn_i = _bn_params(r, c, "bn")
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["cv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cv", *bn], ["Y"]),
        helper.make_node("Relu", ["cv"], ["Z"]),
    ]
    m = _model(nodes, [_vi("X", F32, [1, 3, 6, 6])],
               [_vi("Y", F32, [1, c, 6, 6]), _vi("Z", F32, [1, c, 6, 6])],
               [_init("W", W), *bn_i], "conv_fanout")
    return Case("conv_fanout", "Conv output also used elsewhere", "any", m)


def shared_weight() -> Case:
    """Two Convs share one weight; only one is followed by BN."""
    r = _rng(13)
    c = 6
    W = r.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)
    bn, bn_i = _bn_params(r, c, "bn")
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", *bn], ["Y"]),
        helper.make_node("Conv", ["X", "W"], ["Z"], pads=[1, 1, 1, 1]),
    ]
    m = _model(nodes, [_vi("X", F32, [1, 3, 6, 6])],
               [_vi("Y", F32, [1, c, 6, 6]), _vi("Z", F32, [1, c, 6, 6])],
               [_init("W", W), *bn_i], "shared_weight")
    return Case("shared_weight", "weight shared with a 2nd Conv", "any", m)


ALL_CASES = [
    conv_bn,
    convtranspose_group2_bn,
    gemm_bn,
    matmul_add_bn,
    conv_bn_bn,
    conv_expand_bias,
    constant_identity_weights,
    training_mode_bn,
    fp16_overflow,
    bn15_mixed_precision,
    bn_in_if_branch,
    conv_fanout,
    shared_weight,
]


def write_cases(folder: Path) -> list[tuple[Path, Case]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for make in ALL_CASES:
        case = make()
        path = folder / f"{case.name}.onnx"
        onnx.save(case.model, path)
        out.append((path, case))
    return out


if __name__ == "__main__":  # write the cases somewhere to look at them
    import sys

    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "synthetic_cases")
    for p, c in write_cases(dest):
        print(f"{p}  [{c.expect}]  {c.what}")
