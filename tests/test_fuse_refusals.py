"""One test per refusal reason: the BN stays, the model is unchanged in behaviour, the reason is
stable and the detail says why."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bnfold.planner import REASONS
from builders import bn_node, bn_params, conv_bn_model, make_model, tensor, vinfo
from foldcheck import fold_and_check


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def _left_reason(model, **kw):
    result = fold_and_check(model, expect_left=1, **kw)
    (left,) = result.plan.left
    assert left.reason in REASONS
    assert left.detail
    return left


def test_training_mode(rng):
    """training_mode=1: never folded (the node uses batch statistics)."""
    model = conv_bn_model(rng, bn_attrs={"training_mode": 1})
    bn = model.graph.node[1]
    bn.output.extend(["rm", "rv"])
    assert _left_reason(model, run=False).reason == "training-mode"


def test_spatial_zero_opset8(rng):
    """spatial=0 (opset 8): per-activation statistics are not per channel."""
    model = conv_bn_model(rng, opset=8, ir=3, bn_attrs={"spatial": 0}, spatial=(1, 1), k=1)
    model.graph.input.extend([helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                              for t in model.graph.initializer])
    assert _left_reason(model, run=False).reason == "spatial-mode"


def test_stats_graph_input(rng):
    """The running mean is a graph input: not constant."""
    model = conv_bn_model(rng)
    mean = next(t for t in model.graph.initializer if t.name == "bn.mean")
    model.graph.initializer.remove(mean)
    model.graph.input.append(vinfo("bn.mean", [8]))
    assert _left_reason(model, run=False).reason == "stats-not-constant"


def test_stats_overridable_ir4(rng):
    """IR >= 4: a statistic that is also a graph input may be overridden; folded only on request."""
    model = conv_bn_model(rng)
    model.graph.input.append(vinfo("bn.var", [8]))
    assert _left_reason(model).reason == "stats-overridable"
    assert fold_and_check(model, fold_overridable=True).plan.folds


def test_non_finite_stats(rng):
    """NaN in a running variance: not folded."""
    model = conv_bn_model(rng)
    var = next(t for t in model.graph.initializer if t.name == "bn.var")
    arr = onnx.numpy_helper.to_array(var).copy()
    arr[2] = np.nan
    var.CopyFrom(onnx.numpy_helper.from_array(arr, "bn.var"))
    assert _left_reason(model, run=False).reason == "non-finite"


def test_negative_variance(rng):
    """var + epsilon <= 0: not folded."""
    model = conv_bn_model(rng)
    var = next(t for t in model.graph.initializer if t.name == "bn.var")
    arr = onnx.numpy_helper.to_array(var).copy()
    arr[1] = -1.0
    var.CopyFrom(onnx.numpy_helper.from_array(arr, "bn.var"))
    assert _left_reason(model, run=False).reason == "variance-negative"


def test_no_producer_graph_input(rng):
    """BN directly on a graph input, followed by a padded Conv: nothing can absorb it."""
    inits = bn_params(rng, 4) + [tensor("W", rng.normal(size=(4, 4, 3, 3)))]
    nodes = [bn_node("x", "b"), helper.make_node("Conv", ["b", "W"], ["y"], pads=[1, 1, 1, 1])]
    model = make_model(nodes, [vinfo("x", [1, 4, 5, 5])], [vinfo("y", [1, 4, 5, 5])], inits)
    left = _left_reason(model)
    assert left.reason == "no-producer" and "graph input" in left.detail


def test_unsupported_producer(rng):
    """Relu → BN → Relu: nothing on either side has weights."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), bn_node("r", "b"), helper.make_node("Relu", ["b"], ["y"])]
    model = make_model(nodes, [vinfo("x", [1, 4, 3, 3])], [vinfo("y", [1, 4, 3, 3])], bn_params(rng, 4))
    assert _left_reason(model).reason == "unsupported-producer"


def test_producer_output_shared(rng):
    """The Conv's output also feeds another node: folding would change what it sees."""
    model = conv_bn_model(rng)
    model.graph.node.append(helper.make_node("Relu", ["conv_out"], ["z"]))
    model.graph.output.append(vinfo("z", [1, 8, None, None]))
    assert _left_reason(model).reason == "producer-shared"


def test_producer_output_is_graph_output(rng):
    """The Conv's output is also a graph output."""
    model = conv_bn_model(rng)
    model.graph.output.append(vinfo("conv_out", [1, 8, None, None]))
    assert _left_reason(model).reason == "producer-graph-output"


def test_weight_graph_input(rng):
    """The Conv weight is a graph input (no initializer)."""
    model = conv_bn_model(rng)
    w = next(t for t in model.graph.initializer if t.name == "W")
    model.graph.initializer.remove(w)
    model.graph.input.append(vinfo("W", list(w.dims)))
    assert _left_reason(model, run=False).reason == "weight-not-constant"


def test_weight_overridable(rng):
    """IR >= 4: the Conv weight is an initializer also listed as a graph input."""
    model = conv_bn_model(rng)
    model.graph.input.append(vinfo("W", [8, 3, 3, 3]))
    assert _left_reason(model).reason == "weight-overridable"


def test_quantized_weight(rng):
    """The weight comes out of DequantizeLinear: it is quantized, not folded."""
    model = conv_bn_model(rng)
    w = next(t for t in model.graph.initializer if t.name == "W")
    model.graph.initializer.remove(w)
    q = rng.integers(-100, 100, size=tuple(w.dims)).astype(np.int8)
    model.graph.initializer.extend([tensor("Wq", q, np.int8), tensor("Ws", 0.01), tensor("Wz", 0, np.int8)])
    model.graph.node.insert(0, helper.make_node("DequantizeLinear", ["Wq", "Ws", "Wz"], ["W"]))
    assert _left_reason(model).reason == "quantized-weight"


def test_fold_overflow_float16(rng):
    """Folding would push float16 weights past 65504: refused, with the channels named."""
    model = conv_bn_model(rng, dtype=np.float16)
    scale = next(t for t in model.graph.initializer if t.name == "bn.scale")
    arr = onnx.numpy_helper.to_array(scale).copy()
    arr[3] = 60000
    scale.CopyFrom(onnx.numpy_helper.from_array(arr, "bn.scale"))
    left = _left_reason(model, run=False)
    assert left.reason == "fold-overflow" and left.overflow_channels == (3,)


def test_axis_mismatch_matmul_rank3(rng):
    """MatMul with a rank-3 output: BN's axis 1 is not the weight's column axis."""
    inits = [tensor("W", rng.normal(size=(4, 5)))] + bn_params(rng, 6)
    nodes = [helper.make_node("MatMul", ["a", "W"], ["m"]), bn_node("m", "y")]
    model = make_model(nodes, [vinfo("a", [2, 6, 4])], [vinfo("y", [2, 6, 5])], inits)
    assert _left_reason(model).reason == "axis-mismatch"


def test_opset9_running_stat_outputs_mean_training(rng):
    """Opset 9 BN with its five outputs is in training mode (output case #1 of the spec)."""
    model = conv_bn_model(rng, opset=9)
    model.graph.node[1].output.extend(["rm", "rv", "sm", "sv"])
    assert _left_reason(model, run=False).reason == "training-mode"


def test_every_reason_has_a_sentence():
    """Reason codes are documented in the planner (and the README)."""
    assert all(isinstance(v, str) and len(v) > 20 for v in REASONS.values())


def test_dtype_name_in_overflow_detail(rng):
    """The overflow detail names the dtype so the user knows what to change."""
    model = conv_bn_model(rng, dtype=np.float16)
    var = next(t for t in model.graph.initializer if t.name == "bn.var")
    arr = onnx.numpy_helper.to_array(var).copy()
    arr[:] = 1e-8
    var.CopyFrom(onnx.numpy_helper.from_array(arr, "bn.var"))
    scale = next(t for t in model.graph.initializer if t.name == "bn.scale")
    scale.CopyFrom(onnx.numpy_helper.from_array(np.full(8, 500, np.float16), "bn.scale"))
    left = _left_reason(model, run=False)
    assert "float16" in left.detail
    assert left.reason == "fold-overflow"
    assert TensorProto.FLOAT16 == next(t for t in model.graph.initializer if t.name == "W").data_type


def test_forward_overflow_names_channels_and_backward_reason(rng):
    """A forward fold that overflows float16 is refused with the BN channels and both reasons labelled."""
    c = 4
    scale = np.ones(c)
    scale[2] = 6e4
    inits = [tensor("bn.scale", scale, np.float16), tensor("bn.bias", np.zeros(c), np.float16),
             tensor("bn.mean", np.zeros(c), np.float16), tensor("bn.var", np.ones(c), np.float16),
             tensor("W", np.full((3, c, 1, 1), 10.0), np.float16)]
    nodes = [bn_node("x", "b"), helper.make_node("Conv", ["b", "W"], ["y"], name="conv")]
    model = make_model(nodes, [vinfo("x", [1, c, 2, 2], TensorProto.FLOAT16)],
                       [vinfo("y", [1, 3, 2, 2], TensorProto.FLOAT16)], inits)
    left = _left_reason(model, run=False)
    assert left.reason == "fold-overflow"
    assert left.overflow_channels == (2,)
    assert "Backward:" in left.detail and "graph input" in left.detail


def test_malformed_epsilon_is_bad_input(rng):
    """An epsilon attribute of the wrong type is bad input (InputError), not a crash."""
    from bnfold.errors import InputError
    from bnfold.fuse import fold_proto

    model = conv_bn_model(rng)
    model.graph.node[1].attribute.append(helper.make_attribute("epsilon", "abc"))
    with pytest.raises(InputError, match="malformed epsilon"):
        fold_proto(model)


def test_synthesized_names_do_not_collide_with_real_ones(rng):
    """An unnamed BN whose synthesized name is taken by a real node gets another one."""
    from bnfold.fuse import fold_proto

    model = conv_bn_model(rng)
    model.graph.node[0].name = "BatchNormalization_1"
    model.graph.node[1].name = ""
    result = fold_proto(model)
    (fold,) = result.plan.folds
    assert fold.site.name != "BatchNormalization_1"
    assert fold.target.name == "BatchNormalization_1"


def test_conv_bias_of_the_wrong_shape_is_refused(rng):
    """A Conv bias whose shape is not (C_out,) (seen in a dynamo export) is refused, not a crash."""
    model = conv_bn_model(rng)
    b = next(t for t in model.graph.initializer if t.name == "B")
    b.CopyFrom(tensor("B", rng.normal(size=(8, 2))))
    from bnfold.fuse import fold_proto

    (left,) = fold_proto(model).plan.left
    assert left.reason == "axis-mismatch" and "(8, 2)" in left.detail


def test_weightless_producer_with_shared_output_reports_the_real_blocker(rng):
    """Concat → BN where Concat's output is also read elsewhere (DenseNet): unsupported-producer."""
    nodes = [helper.make_node("Concat", ["x", "x"], ["cat"], axis=1), bn_node("cat", "b"),
             helper.make_node("Relu", ["b"], ["y"]), helper.make_node("Relu", ["cat"], ["z"])]
    model = make_model(nodes, [vinfo("x", [1, 2, 3, 3])], [vinfo("y", [1, 4, 3, 3]), vinfo("z", [1, 4, 3, 3])],
                       bn_params(rng, 4))
    assert _left_reason(model).reason == "unsupported-producer"
