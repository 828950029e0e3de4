"""Small model builders and an onnxruntime oracle shared by the tests.

Every model sets ``ir_version`` explicitly: onnx 1.23 writes IR 14 by default, which onnxruntime
1.31 refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

IR = 8
OPSET = 17

NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.float64): TensorProto.DOUBLE,
}


def tensor(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def vinfo(name: str, shape, elem=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, initializers=(), *, opset: int = OPSET, ir: int = IR,
               functions=(), extra_opsets=(), value_info=()) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers),
                              value_info=list(value_info))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = ir
    return model


def bn_params(rng: np.random.Generator, c: int, prefix: str = "bn", dtype=np.float32,
              var_low: float = 0.05, var_high: float = 3.0) -> list[onnx.TensorProto]:
    """Trained-looking statistics: scale, bias, mean, var named ``{prefix}.{role}``."""
    return [
        tensor(f"{prefix}.scale", rng.uniform(0.4, 1.6, c), dtype),
        tensor(f"{prefix}.bias", rng.normal(0, 0.3, c), dtype),
        tensor(f"{prefix}.mean", rng.normal(0, 0.5, c), dtype),
        tensor(f"{prefix}.var", rng.uniform(var_low, var_high, c), dtype),
    ]


def bn_node(x: str, y: str, prefix: str = "bn", name: str | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node(
        "BatchNormalization",
        [x, f"{prefix}.scale", f"{prefix}.bias", f"{prefix}.mean", f"{prefix}.var"],
        [y], name=prefix if name is None else name, **attrs,
    )


def conv_bn_model(rng, *, c_in=3, c_out=8, k=3, group=1, bias=True, dtype=np.float32,
                  opset=OPSET, ir=IR, spatial=(8, 8), conv_attrs=None, bn_attrs=None) -> onnx.ModelProto:
    """x → Conv → BN → Relu → y."""
    w = rng.normal(0, 0.5, (c_out, c_in // group, *([k] * len(spatial))))
    inits = [tensor("W", w, dtype)] + bn_params(rng, c_out, dtype=dtype)
    conv_inputs = ["x", "W"]
    if bias:
        inits.append(tensor("B", rng.normal(0, 0.2, c_out), dtype))
        conv_inputs.append("B")
    nodes = [
        helper.make_node("Conv", conv_inputs, ["conv_out"], name="conv", group=group,
                         **(conv_attrs or {})),
        bn_node("conv_out", "bn_out", **(bn_attrs or {})),
        helper.make_node("Relu", ["bn_out"], ["y"], name="relu"),
    ]
    elem = NP_TO_ONNX[np.dtype(dtype)]
    return make_model(nodes, [vinfo("x", [1, c_in, *spatial], elem)], [vinfo("y", [None] * (2 + len(spatial)), elem)],
                      inits, opset=opset, ir=ir)


def session(model_or_path) -> ort.InferenceSession:
    """onnxruntime CPU session with every graph optimization off (BASIC folds Conv+BN itself)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    src = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def random_feeds(sess: ort.InferenceSession, seed: int = 0, dims: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else dims for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape).astype(_ORT_TYPES[i.type])
    return feeds


def run_both(original, folded, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    a, b = session(original), session(folded)
    feeds = random_feeds(a, seed)
    return list(zip(a.run(None, feeds), b.run(None, feeds)))


def max_rel_error(pairs) -> float:
    """Largest error relative to the reference's magnitude, over all outputs."""
    worst = 0.0
    for ref, got in pairs:
        ref = ref.astype(np.float64)
        scale = max(float(np.abs(ref).max()), 1e-30)
        worst = max(worst, float(np.abs(ref - got.astype(np.float64)).max()) / scale)
    return worst


def count_ops(model: onnx.ModelProto, op: str) -> int:
    from bnfold.modelio import iter_graphs

    n = sum(1 for g in iter_graphs(model.graph) for node in g.node if node.op_type == op)
    return n + sum(1 for f in model.functions for node in f.node if node.op_type == op)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def set_initializer_values(model: onnx.ModelProto, name: str, update) -> None:
    """Replace initializer ``name`` with ``update(a copy of its values)``."""
    tensor_proto = next(t for t in model.graph.initializer if t.name == name)
    values = numpy_helper.to_array(tensor_proto).copy()
    values = update(values)
    tensor_proto.CopyFrom(numpy_helper.from_array(values, name))


def late_overflow_conv_bn_model(rng) -> onnx.ModelProto:
    """Conv+BN (float32) whose fold overflows only in channel 2: |W| = 3e38 there, gain 50.

    With the planner's weight bound lowered, the overflow is found only when the folded weight
    is computed."""
    model = conv_bn_model(rng)

    def huge(w):
        w[2] = 3e38
        return w

    def gain(s):
        s[2] = 50.0
        return s

    set_initializer_values(model, "W", huge)
    set_initializer_values(model, "bn.scale", gain)
    return model
