"""Edge cases a review found: each once produced a wrong model, an invalid one, or a crash."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bnfold.fuse import fold_proto, fuse_model
from builders import (bn_node, bn_params, conv_bn_model, late_overflow_conv_bn_model, make_model,
                      max_rel_error, session, tensor, vinfo)
from foldcheck import fold_and_check


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def _function_conv_bn(rng, c=4, *, name="ConvBN", eps_ref=False, group_ref=False, overload=""):
    consts = [("W", rng.normal(0, 0.5, (c, 3, 3, 3))), ("s", rng.uniform(0.5, 2, c)),
              ("b", rng.uniform(-1, 1, c)), ("m", rng.uniform(-1, 1, c)), ("v", rng.uniform(0.01, 1, c))]
    body = [helper.make_node("Constant", [], [n], value=tensor(n, a)) for n, a in consts]
    conv = helper.make_node("Conv", ["fx", "W"], ["c"], name="conv")
    bn = helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["fy"], name="bn")
    attributes = []
    if group_ref:
        ref = helper.AttributeProto(name="group", ref_attr_name="g", type=helper.AttributeProto.INT)
        conv.attribute.append(ref)
        attributes.append("g")
    if eps_ref:
        ref = helper.AttributeProto(name="epsilon", ref_attr_name="eps", type=helper.AttributeProto.FLOAT)
        bn.attribute.append(ref)
        attributes.append("eps")
    fn = helper.make_function("local", name, ["fx"], ["fy"], body + [conv, bn],
                              [helper.make_opsetid("", 17)], attributes=attributes)
    if overload:
        fn.overload = overload
    return fn


def test_shape_reader_inside_a_transpose_chain_blocks_the_fold(rng):
    """Shape of the NHWC tensor between two Transposes must keep its NHWC answer: not folded."""
    model = conv_bn_model(rng, c_out=4, spatial=(8, 6), conv_attrs={"pads": [1, 1, 1, 1]})
    conv = model.graph.node[0]
    conv.output[0] = "c"
    model.graph.node.insert(1, helper.make_node("Transpose", ["c"], ["t1"], perm=[0, 2, 3, 1]))
    model.graph.node.insert(2, helper.make_node("Shape", ["t1"], ["shp"]))
    model.graph.node.insert(3, helper.make_node("Transpose", ["t1"], ["conv_out"], perm=[0, 3, 1, 2]))
    model.graph.output.append(vinfo("shp", [4], TensorProto.INT64))
    result = fold_and_check(model, expect_left=1)
    assert result.plan.left[0].reason == "producer-shared"


@pytest.mark.parametrize("eps_ref,group_ref", [(True, False), (False, True)])
def test_function_attribute_references_fold_after_inlining(rng, eps_ref, group_ref):
    """ref_attr_name in a function (BN epsilon or Conv group): no crash; inlining resolves it."""
    fn = _function_conv_bn(rng, eps_ref=eps_ref, group_ref=group_ref)
    attrs = {"eps": 0.5} if eps_ref else {"g": 1}
    call = helper.make_node("ConvBN", ["x"], ["y"], domain="local", name="call", **attrs)
    model = make_model([call], [vinfo("x", [1, 3, 8, 8])], [vinfo("y", [1, 4, 6, 6])],
                       functions=[fn], extra_opsets=[("local", 1)])
    result = fold_and_check(model)
    assert len(result.plan.folds) == 1


def test_castlike_weight_with_untyped_like_input(rng):
    """A weight cast like a tensor with no value_info folds in fuse as inspect says it does."""
    w = tensor("W64", rng.normal(0, 0.5, (4, 3, 3, 3)), np.float64)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("CastLike", ["W64", "r"], ["W"]),
             helper.make_node("Conv", ["r", "W"], ["c"], name="conv"), bn_node("c", "y")]
    model = make_model(nodes, [vinfo("x", [1, 3, 6, 6])], [vinfo("y", [1, 4, 4, 4])], [w] + bn_params(rng, 4))
    assert len(fold_and_check(model).plan.folds) == 1


def test_function_overloads_are_folded_separately(rng):
    """IR 10 overloads of one function name hold different weights; each keeps its own."""
    fa, fb = _function_conv_bn(rng, name="F", overload="a"), _function_conv_bn(rng, name="F", overload="b")
    n1 = helper.make_node("F", ["x"], ["y1"], domain="local")
    n1.overload = "a"
    n2 = helper.make_node("F", ["x"], ["y2"], domain="local")
    n2.overload = "b"
    model = make_model([n1, n2], [vinfo("x", [1, 3, 8, 8])],
                       [vinfo("y1", [1, 4, 6, 6]), vinfo("y2", [1, 4, 6, 6])],
                       functions=[fa, fb], extra_opsets=[("local", 1)], ir=10)
    assert len(fold_and_check(model).plan.folds) == 2


def test_external_data_writer_handles_typed_string_and_int4_tensors(rng, tmp_path):
    """Moving tensors to external data: float_data converted, strings stay inline, int4 packed."""
    c = 64
    float_data = helper.make_tensor("M", TensorProto.FLOAT, (c, c), rng.normal(size=c * c).astype(np.float32).tolist())
    strings = helper.make_tensor("S", TensorProto.STRING, (300,), [b"abcdefgh%d" % i for i in range(300)])
    q = rng.integers(-8, 8, size=(c, 64)).astype(np.int8)
    int4 = helper.make_tensor("Q", TensorProto.INT4, q.shape, q.ravel().tolist())
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv"), bn_node("c", "y"),
             helper.make_node("MatMul", ["z", "M"], ["y2"]),
             helper.make_node("Identity", ["S"], ["s_out"]),
             helper.make_node("DequantizeLinear", ["Q", "qs"], ["y3"], axis=0)]
    inits = [tensor("W", rng.normal(0, 0.5, (c, 3, 3, 3))), float_data, strings, int4,
             tensor("qs", np.full(c, 0.1))] + bn_params(rng, c)
    model = make_model(nodes, [vinfo("x", [1, 3, 6, 6]), vinfo("z", [2, c])],
                       [vinfo("y", [1, c, 4, 4]), vinfo("y2", [2, c]), vinfo("s_out", [300], TensorProto.STRING),
                        vinfo("y3", [c, 64])], inits, opset=21, ir=10)
    src = tmp_path / "m.onnx"
    onnx.save(model, str(src))
    fuse_model(src, tmp_path / "out.onnx", validate=False, external_data=True)
    onnx.checker.check_model(str(tmp_path / "out.onnx"), full_check=True)
    a, b = session(src), session(tmp_path / "out.onnx")
    feeds = {"x": rng.standard_normal((1, 3, 6, 6)).astype(np.float32), "z": rng.standard_normal((2, c)).astype(np.float32)}
    for ref, got in zip(a.run(None, feeds), b.run(None, feeds)):
        if ref.dtype.kind == "f":
            assert max_rel_error([(ref, got)]) < 2e-5
        else:
            assert np.array_equal(ref, got)


def test_ir3_if_branch_fold_is_valid(rng):
    """IR 3: new constants inside an If branch are Constant nodes (no unlisted initializers)."""
    c = 4
    then = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["tc"], pads=[1, 1, 1, 1]), bn_node("tc", "ty")],
                             "then", [], [vinfo("ty", [1, c, 5, 5])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["ey"])], "else", [], [vinfo("ey", [1, c, 5, 5])])
    inits = [tensor("W", rng.normal(0, 0.5, (c, c, 3, 3)))] + bn_params(rng, c)
    model = make_model([helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)],
                       [vinfo("x", [1, c, 5, 5]), vinfo("cond", [], TensorProto.BOOL)], [vinfo("y", [1, c, 5, 5])],
                       inits, opset=8, ir=3)
    model.graph.input.extend([helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits])
    folded = fold_and_check(model, run=False).model
    feeds = {"x": rng.standard_normal((1, c, 5, 5)).astype(np.float32), "cond": np.array(True)}
    assert max_rel_error([(session(model).run(None, feeds)[0], session(folded).run(None, feeds)[0])]) < 2e-5


def test_sparse_constant_statistics_are_constants(rng):
    """A BN statistic from a Constant with a sparse_value densifies and folds."""
    c = 4
    values = numpy_helper.from_array(np.array([0.5, 2.0], np.float32), "v")
    indices = numpy_helper.from_array(np.array([1, 3], np.int64), "i")
    sparse_bias = helper.make_sparse_tensor(values, indices, [c])
    params = [t for t in bn_params(rng, c) if t.name != "bn.bias"]
    nodes = [helper.make_node("Constant", [], ["bn.bias"], sparse_value=sparse_bias),
             helper.make_node("Conv", ["x", "W"], ["conv_out"], name="conv"), bn_node("conv_out", "y")]
    model = make_model(nodes, [vinfo("x", [1, 3, 5, 5])], [vinfo("y", [1, c, 3, 3])],
                       [tensor("W", rng.normal(0, 0.5, (c, 3, 3, 3)))] + params)
    assert len(fold_and_check(model).plan.folds) == 1


def test_fold_proto_replans_when_a_weight_overflows_late(rng, monkeypatch):
    """fold_proto, like fuse, refuses a fold whose weight overflows only when computed."""
    import bnfold.planner as planner

    monkeypatch.setattr(planner, "WEIGHT_BOUND", 1.0)
    model = late_overflow_conv_bn_model(rng)
    assert [d.reason for d in fold_proto(model).plan.left] == ["fold-overflow"]


def test_subgraph_folds_are_written_when_the_main_graph_folds_too(rng):
    """Main Conv→BN plus Conv→BN in both If branches: every fold lands in the written model."""
    c = 4
    branches = []
    for tag in ("then", "else"):
        nodes = [helper.make_node("Conv", ["h", f"W{tag}"], [f"{tag}c"], pads=[1, 1, 1, 1]),
                 bn_node(f"{tag}c", f"{tag}y", prefix=f"bn{tag}")]
        branches.append(helper.make_graph(nodes, tag, [], [vinfo(f"{tag}y", [1, c, 5, 5])],
                                          [tensor(f"W{tag}", rng.normal(0, 0.5, (c, c, 3, 3)))]
                                          + bn_params(rng, c, prefix=f"bn{tag}")))
    nodes = [helper.make_node("Conv", ["x", "W"], ["mc"], pads=[1, 1, 1, 1]), bn_node("mc", "h"),
             helper.make_node("If", ["cond"], ["y"], then_branch=branches[0], else_branch=branches[1])]
    model = make_model(nodes, [vinfo("x", [1, c, 5, 5]), vinfo("cond", [], TensorProto.BOOL)],
                       [vinfo("y", [1, c, 5, 5])], [tensor("W", rng.normal(0, 0.5, (c, c, 3, 3)))] + bn_params(rng, c))
    folded = fold_and_check(model, run=False).model
    for cond in (True, False):
        feeds = {"x": rng.standard_normal((1, c, 5, 5)).astype(np.float32), "cond": np.array(cond)}
        assert max_rel_error([(session(model).run(None, feeds)[0], session(folded).run(None, feeds)[0])]) < 2e-5
