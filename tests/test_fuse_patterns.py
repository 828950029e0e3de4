"""One test per fold pattern: the folded model matches the original in onnxruntime."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import (bn_node, bn_params, conv_bn_model, count_ops, make_model, tensor,
                      vinfo, max_rel_error)
from foldcheck import fold_and_check


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_conv_bn_relu_folds_backward(rng):
    """x → Conv → BN → Relu: BN disappears, Conv writes the BN's output name."""
    model = conv_bn_model(rng)
    result = fold_and_check(model)
    conv = next(n for n in result.model.graph.node if n.op_type == "Conv")
    assert conv.output[0] == "bn_out"
    assert [d.target.name for d in result.plan.folds] == ["conv"]


def test_conv_without_bias_gets_one(rng):
    """A Conv with no bias input gains a bias holding the BN's shift."""
    result = fold_and_check(conv_bn_model(rng, bias=False))
    conv = next(n for n in result.model.graph.node if n.op_type == "Conv")
    assert len(conv.input) == 3


@pytest.mark.parametrize("spatial", [(9,), (6, 7), (4, 5, 3)])
def test_conv_1d_2d_3d(rng, spatial):
    """Conv1d, Conv2d and Conv3d fold the same way."""
    fold_and_check(conv_bn_model(rng, spatial=spatial))


def test_depthwise_conv(rng):
    """Depthwise Conv (group = channels) folds per output channel."""
    fold_and_check(conv_bn_model(rng, c_in=8, c_out=8, group=8))


def test_conv_auto_pad_strides_dilations(rng):
    """auto_pad, strides and dilations do not change the fold."""
    fold_and_check(conv_bn_model(rng, spatial=(11, 11), conv_attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]}))
    fold_and_check(conv_bn_model(rng, spatial=(11, 11), conv_attrs={"dilations": [2, 2], "pads": [1, 2, 1, 0]}))


def _convtranspose_model(rng, *, group=2, bias=True, **attrs):
    c_in, c_out = 4, 6
    w = rng.normal(0, 0.5, (c_in, c_out // group, 3, 3))
    inits = [tensor("W", w)] + bn_params(rng, c_out)
    ins = ["x", "W"]
    if bias:
        inits.append(tensor("B", rng.normal(0, 0.2, c_out)))
        ins.append("B")
    nodes = [helper.make_node("ConvTranspose", ins, ["ct"], name="deconv", group=group, **attrs),
             bn_node("ct", "y")]
    return make_model(nodes, [vinfo("x", [1, c_in, 5, 5])], [vinfo("y", [1, c_out, None, None])], inits)


@pytest.mark.parametrize("group", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_convtranspose(rng, group, bias):
    """ConvTranspose: output channel is axis 1 of W within each group."""
    fold_and_check(_convtranspose_model(rng, group=group, bias=bias, strides=[2, 2], pads=[1, 1, 1, 1],
                                        output_padding=[1, 1]))


def test_convtranspose_output_shape(rng):
    """ConvTranspose with an explicit output_shape folds."""
    fold_and_check(_convtranspose_model(rng, strides=[2, 2], output_shape=[10, 10]))


def _gemm_model(rng, *, trans_a=0, trans_b=0, alpha=1.0, beta=1.0, c_shape=(6,), m=3, k=4, n=6):
    w = rng.normal(0, 0.5, (n, k) if trans_b else (k, n))
    inits = [tensor("W", w)] + bn_params(rng, n)
    ins = ["a", "W"]
    if c_shape is not None:
        inits.append(tensor("C", rng.normal(0, 0.3, c_shape)))
        ins.append("C")
    nodes = [helper.make_node("Gemm", ins, ["g"], name="fc", transA=trans_a, transB=trans_b,
                              alpha=alpha, beta=beta),
             bn_node("g", "y")]
    a_shape = [k, m] if trans_a else [m, k]
    return make_model(nodes, [vinfo("a", a_shape)], [vinfo("y", [m, n])], inits)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (), (6,), (1, 6), (3, 1), (3, 6)])
def test_gemm(rng, trans_a, trans_b, c_shape):
    """Gemm with transA/transB, alpha, beta and C of any broadcastable shape."""
    fold_and_check(_gemm_model(rng, trans_a=trans_a, trans_b=trans_b, alpha=0.6, beta=1.7, c_shape=c_shape))


def test_gemm_beta_zero_ignores_c(rng):
    """beta=0 means C contributes nothing; the fold must not resurrect it."""
    fold_and_check(_gemm_model(rng, beta=0.0))


def _matmul_model(rng, *, add_bias=True, a_shape=(3, 4), n=6, bias_shape=None):
    k = a_shape[-1]
    inits = [tensor("W", rng.normal(0, 0.5, (k, n)))] + bn_params(rng, n)
    nodes = [helper.make_node("MatMul", ["a", "W"], ["mm"], name="mm")]
    bn_in = "mm"
    if add_bias:
        inits.append(tensor("b", rng.normal(0, 0.3, bias_shape or (n,))))
        nodes.append(helper.make_node("Add", ["mm", "b"], ["mm_b"], name="mm_add"))
        bn_in = "mm_b"
    nodes.append(bn_node(bn_in, "y"))
    return make_model(nodes, [vinfo("a", list(a_shape))], [vinfo("y", [None] * len(a_shape))], inits)


@pytest.mark.parametrize("add_bias", [True, False])
def test_matmul_rank2(rng, add_bias):
    """MatMul (rank-2 output) with or without a following constant Add."""
    result = fold_and_check(_matmul_model(rng, add_bias=add_bias))
    assert [n.op_type for n in result.model.graph.node] == ["MatMul", "Add"]


def test_matmul_add_bias_row_vector(rng):
    """The Add's bias may be shaped (1, N)."""
    fold_and_check(_matmul_model(rng, bias_shape=(1, 6)))


def test_matmul_rank3_refused_axis_mismatch(rng):
    """MatMul with a rank-3 output: BN's axis 1 is not the weight's column axis."""
    model = _matmul_model(rng, a_shape=(2, 6, 4), n=6)
    result = fold_and_check(model, expect_left=1)
    assert result.plan.left[0].reason == "axis-mismatch"


def test_conv_bn_bn_chain(rng):
    """Conv → BN → BN folds both into the Conv."""
    model = conv_bn_model(rng)
    graph = model.graph
    graph.initializer.extend(bn_params(rng, 8, prefix="bn2"))
    relu = graph.node[2]
    relu.input[0] = "bn2_out"
    graph.node.insert(2, bn_node("bn_out", "bn2_out", prefix="bn2"))
    result = fold_and_check(model)
    assert [d.target.name for d in result.plan.folds] == ["conv", "conv"]
    assert next(n for n in result.model.graph.node if n.op_type == "Conv").output[0] == "bn2_out"


def _bn_then_conv(rng, *, pads=(0, 0, 0, 0), group=1, auto_pad=None):
    c = 4
    inits = bn_params(rng, c) + [tensor("W", rng.normal(0, 0.5, (6, c // group, 3, 3))),
                                 tensor("B", rng.normal(0, 0.1, 6))]
    attrs = {"group": group}
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = list(pads)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), bn_node("r", "bn_out"),
             helper.make_node("Conv", ["bn_out", "W", "B"], ["y"], name="conv", **attrs)]
    return make_model(nodes, [vinfo("x", [1, c, 8, 8])], [vinfo("y", [1, 6, None, None])], inits)


@pytest.mark.parametrize("group", [1, 2])
def test_forward_fold_into_unpadded_conv(rng, group):
    """Relu → BN → Conv(no padding): BN folds forward into the Conv."""
    result = fold_and_check(_bn_then_conv(rng, group=group))
    assert result.plan.folds[0].direction == "forward"


def test_forward_fold_auto_pad_valid(rng):
    """auto_pad=VALID counts as no padding."""
    assert fold_and_check(_bn_then_conv(rng, auto_pad="VALID")).plan.folds[0].direction == "forward"


def test_forward_fold_refused_with_padding(rng):
    """A padded Conv after the BN would see shifted zeros: not folded, with a reason."""
    result = fold_and_check(_bn_then_conv(rng, pads=(1, 1, 1, 1)), expect_left=1)
    assert result.plan.left[0].reason == "unsupported-producer"
    assert "pads" in result.plan.left[0].detail


def test_forward_fold_into_gemm(rng):
    """BN1d before a Linear (Gemm, transA=0) folds forward."""
    inits = bn_params(rng, 4) + [tensor("W", rng.normal(0, 0.5, (6, 4))), tensor("C", rng.normal(0, 0.1, 6))]
    nodes = [bn_node("x", "bn_out"),
             helper.make_node("Gemm", ["bn_out", "W", "C"], ["y"], name="fc", transB=1, alpha=0.5, beta=2.0)]
    model = make_model(nodes, [vinfo("x", [3, 4])], [vinfo("y", [3, 6])], inits)
    assert fold_and_check(model).plan.folds[0].rule == "forward-gemm"


def test_decompose_leftover_bn(rng):
    """--decompose turns an unfoldable inference BN into Mul+Add with the same output."""
    model = _bn_then_conv(rng, pads=(1, 1, 1, 1))
    result = fold_and_check(model, decompose=True)
    assert result.decomposed == ("bn",)
    assert count_ops(result.model, "Mul") == 1 and count_ops(result.model, "Add") == 1


def test_weights_through_constant_identity_expand(rng):
    """Weight from a Constant node through Identity; bias through Expand (dynamo, optimize=False)."""
    c_out = 8
    w = tensor("w_value", rng.normal(0, 0.5, (c_out, 3, 3, 3)))
    nodes = [
        helper.make_node("Constant", [], ["w_const"], value=w),
        helper.make_node("Identity", ["w_const"], ["w_id"]),
        helper.make_node("Constant", [], ["b_scalar"], value=tensor("b", [0.25])),
        helper.make_node("Constant", [], ["b_shape"], value=tensor("s", [c_out], np.int64)),
        helper.make_node("Expand", ["b_scalar", "b_shape"], ["b_full"]),
        helper.make_node("Conv", ["x", "w_id", "b_full"], ["c"], pads=[1, 1, 1, 1]),
        bn_node("c", "y", name=""),
    ]
    model = make_model(nodes, [vinfo("x", [1, 3, 6, 6])], [vinfo("y", [1, c_out, 6, 6])],
                       bn_params(rng, c_out))
    result = fold_and_check(model)
    assert count_ops(result.model, "Expand") == 0 and count_ops(result.model, "Constant") == 0
    assert result.plan.folds[0].site.name == "BatchNormalization_6"


def test_shared_weight_is_copied_on_write(rng):
    """Two Convs share W; only one is followed by BN: the other keeps the original W."""
    c = 4
    inits = [tensor("W", rng.normal(0, 0.5, (c, c, 1, 1)))] + bn_params(rng, c)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c1"], name="conv1"),
             bn_node("c1", "b1"),
             helper.make_node("Conv", ["x", "W"], ["c2"], name="conv2"),
             helper.make_node("Add", ["b1", "c2"], ["y"])]
    model = make_model(nodes, [vinfo("x", [1, c, 3, 3])], [vinfo("y", [1, c, 3, 3])], inits)
    result = fold_and_check(model)
    convs = {n.name: n for n in result.model.graph.node if n.op_type == "Conv"}
    assert convs["conv2"].input[1] == "W"
    assert convs["conv1"].input[1] != "W"
    assert {t.name for t in result.model.graph.initializer} >= {"W", convs["conv1"].input[1]}


def test_bn_output_name_is_graph_output(rng):
    """When the BN's output is a graph output, the folded Conv writes that same name."""
    model = conv_bn_model(rng)
    del model.graph.node[2]
    model.graph.output[0].name = "bn_out"
    result = fold_and_check(model)
    assert result.model.graph.node[-1].output[0] == "bn_out"


def test_metadata_and_docs_preserved(rng):
    """Metadata, doc strings, producer info, opset and IR survive."""
    model = conv_bn_model(rng)
    model.doc_string = "my model"
    model.producer_name = "pytorch"
    model.graph.doc_string = "graph doc"
    onnx.helper.set_model_props(model, {"author": "me"})
    folded = fold_and_check(model).model
    assert folded.doc_string == "my model" and folded.producer_name == "pytorch"
    assert folded.graph.doc_string == "graph doc"
    assert {p.key: p.value for p in folded.metadata_props} == {"author": "me"}


def test_float16_model(rng):
    """A float16 Conv+BN folds with float16 weights, within fp16 rounding."""
    result = fold_and_check(conv_bn_model(rng, dtype=np.float16), dtype=np.float16)
    w = next(t for t in result.model.graph.initializer if t.name.startswith("W"))
    assert w.data_type == TensorProto.FLOAT16


def test_bn15_mixed_dtypes(rng):
    """BN-15 with fp16 activations and fp32 statistics folds into fp16 weights; model stays valid."""
    model = conv_bn_model(rng, dtype=np.float16, opset=15)
    stats = bn_params(rng, 8)  # float32
    keep = [t for t in model.graph.initializer if not t.name.startswith("bn.")]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep + stats)
    result = fold_and_check(model, dtype=np.float16)
    types = {t.data_type for t in result.model.graph.initializer}
    assert types == {TensorProto.FLOAT16}


def test_bfloat16_weights_cast_once(rng):
    """bfloat16 Gemm+BN: folded values equal the float64 fold cast once to bfloat16."""
    import ml_dtypes

    from bnfold import bnmath

    model = _gemm_model(rng, trans_b=1, alpha=1.0, beta=1.0, c_shape=(6,))
    for t in list(model.graph.initializer):
        arr = onnx.numpy_helper.to_array(t).astype(ml_dtypes.bfloat16)
        t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.elem_type = TensorProto.BFLOAT16
    result = fold_and_check(model, run=False)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in result.model.graph.initializer}
    gemm = next(n for n in result.model.graph.node if n.op_type == "Gemm")
    src = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    aff = bnmath.bn_affine(src["bn.scale"], src["bn.bias"], src["bn.mean"], src["bn.var"], 1e-5)
    w_want, c_want = bnmath.fold_into_gemm(src["W"], src["C"], aff, trans_b=True, beta=1.0)
    assert init[gemm.input[1]].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(init[gemm.input[1]], w_want.astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(init[gemm.input[2]], c_want.astype(ml_dtypes.bfloat16))


def test_fold_inside_if_branch_with_outer_weight(rng):
    """Conv+BN inside an If branch, the Conv weight living in the outer graph."""
    c = 4
    outer_inits = [tensor("W", rng.normal(0, 0.5, (c, c, 3, 3)))]
    then_nodes = [helper.make_node("Conv", ["x", "W"], ["tc"], pads=[1, 1, 1, 1], name="then_conv"),
                  bn_node("tc", "then_y", prefix="tbn")]
    then_graph = helper.make_graph(then_nodes, "then", [], [vinfo("then_y", [1, c, 5, 5])],
                                   bn_params(rng, c, prefix="tbn"))
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["else_y"])], "else", [],
                                   [vinfo("else_y", [1, c, 5, 5])])
    nodes = [helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)]
    model = make_model(nodes, [vinfo("x", [1, c, 5, 5]), vinfo("cond", [], TensorProto.BOOL)],
                       [vinfo("y", [1, c, 5, 5])], outer_inits)
    result = fold_and_check(model, run=False)
    assert result.plan.folds[0].site.graph == "main/branch.then_branch"
    from builders import session

    a, b = session(model), session(result.model)
    feeds = {"x": rng.standard_normal((1, c, 5, 5)).astype(np.float32), "cond": np.array(True)}
    assert max_rel_error([(a.run(None, feeds)[0], b.run(None, feeds)[0])]) < 2e-5


def test_fold_inside_local_function(rng):
    """Conv+BN inside a model-local function with Constant-node weights folds in the body."""
    c = 4
    consts = [helper.make_node("Constant", [], [n], value=t) for n, t in [
        ("fw", tensor("fw", rng.normal(0, 0.5, (c, c, 1, 1))))] + [
        (t.name, t) for t in bn_params(rng, c, prefix="fbn")]]
    body = consts + [helper.make_node("Conv", ["fx", "fw"], ["fc"], name="fconv"),
                     bn_node("fc", "fy", prefix="fbn")]
    fn = helper.make_function("local", "ConvBn", ["fx"], ["fy"], body,
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("ConvBn", ["x"], ["y"], domain="local", name="call")]
    model = make_model(nodes, [vinfo("x", [1, c, 3, 3])], [vinfo("y", [1, c, 3, 3])],
                       functions=[fn], extra_opsets=[("local", 1)])
    result = fold_and_check(model)
    assert result.plan.folds[0].site.graph == "function:local.ConvBn"
    assert count_ops(result.model, "BatchNormalization") == 0


def _conv_bn_function():
    body = [helper.make_node("Conv", ["fx", "fw"], ["fc"], name="fconv"),
            helper.make_node("BatchNormalization", ["fc", "s", "b", "m", "v"], ["fy"], name="fbn")]
    return helper.make_function("local", "ConvBn", ["fx", "fw", "s", "b", "m", "v"], ["fy"], body,
                                [helper.make_opsetid("", 17)])


def test_function_parameters_fold_per_call_site(rng):
    """Two call sites pass different constant weights and statistics: each gets a specialized copy."""
    c = 4
    inits = [tensor("W1", rng.normal(0, 0.5, (c, c, 1, 1))), tensor("W2", rng.normal(0, 0.5, (c, c, 1, 1)))]
    inits += bn_params(rng, c, prefix="bn1") + bn_params(rng, c, prefix="bn2")
    nodes = [helper.make_node("ConvBn", ["x", "W1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["h"], domain="local"),
             helper.make_node("ConvBn", ["h", "W2", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"], ["y"], domain="local")]
    model = make_model(nodes, [vinfo("x", [1, c, 3, 3])], [vinfo("y", [1, c, 3, 3])], inits,
                       functions=[_conv_bn_function()], extra_opsets=[("local", 1)])
    result = fold_and_check(model)
    assert len(result.plan.folds) == 2
    assert sorted(f.name for f in result.model.functions) == ["ConvBn_bnfold", "ConvBn_bnfold2"]


def test_function_call_with_runtime_weights_is_not_folded(rng):
    """A call site passing a graph input as the weight: left, with a reason naming the function."""
    c = 4
    inits = bn_params(rng, c)
    nodes = [helper.make_node("ConvBn", ["x", "W", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["y"], domain="local")]
    model = make_model(nodes, [vinfo("x", [1, c, 3, 3]), vinfo("W", [c, c, 1, 1])], [vinfo("y", [1, c, 3, 3])],
                       inits, functions=[_conv_bn_function()], extra_opsets=[("local", 1)])
    result = fold_and_check(model, expect_left=1, run=False)
    left = result.plan.left[0]
    assert left.reason == "stats-not-constant" and "function" in left.detail


def test_inspect_reports_function_bn_as_foldable_per_call_site(rng, tmp_path):
    """inspect agrees with fuse: a function BN that folds once specialized is reported foldable."""
    from bnfold.inspection import inspect_model

    c = 4
    inits = [tensor("W", rng.normal(0, 0.5, (c, c, 1, 1)))] + bn_params(rng, c)
    nodes = [helper.make_node("ConvBn", ["x", "W", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["y"], domain="local")]
    model = make_model(nodes, [vinfo("x", [1, c, 3, 3])], [vinfo("y", [1, c, 3, 3])], inits,
                       functions=[_conv_bn_function()], extra_opsets=[("local", 1)])
    onnx.save(model, str(tmp_path / "f.onnx"))
    (bn,) = inspect_model(tmp_path / "f.onnx").batchnorms
    assert bn.graph == "function:local.ConvBn"
    assert bn.fold.foldable and "call site" in bn.fold.detail


def test_ir3_initializers_listed_as_inputs_are_constants(rng):
    """IR 3: every initializer is also a graph input; they are still constants."""
    model = conv_bn_model(rng, opset=8, ir=3)
    model.graph.input.extend([helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                              for t in model.graph.initializer])
    result = fold_and_check(model, run=False)
    assert len(result.plan.folds) == 1
    real_inputs = [i.name for i in result.model.graph.input if i.name not in {t.name for t in result.model.graph.initializer}]
    assert real_inputs == ["x"]


def test_shape_reader_of_producer_output_does_not_block(rng):
    """Conv output also read by Shape (dynamic-shape exports): folds; Shape reads the BN output."""
    model = conv_bn_model(rng)
    model.graph.node.append(helper.make_node("Shape", ["conv_out"], ["shp"]))
    model.graph.output.append(helper.make_tensor_value_info("shp", TensorProto.INT64, [4]))
    result = fold_and_check(model)
    shape_node = next(n for n in result.model.graph.node if n.op_type == "Shape")
    assert list(shape_node.input) == ["bn_out"]


def test_dynamo_castlike_bias_folds_and_leaves_no_dead_weights(rng):
    """PyTorch dynamo (optimize=False): the Conv bias is CastLike(const, input) expanded to the
    weight's shape; it folds, and the dead bias chain and the old weight are removed."""
    c_out = 6
    nodes = [
        helper.make_node("Shape", ["W"], ["w_shape"]),
        helper.make_node("Constant", [], ["idx"], value=tensor("i", [0], np.int64)),
        helper.make_node("Gather", ["w_shape", "idx"], ["c"]),
        helper.make_node("Constant", [], ["zero"], value=tensor("z", 0.0, np.float64)),
        helper.make_node("CastLike", ["zero", "x"], ["zero_like"]),
        helper.make_node("Expand", ["zero_like", "c"], ["bias"]),
        helper.make_node("Conv", ["x", "W", "bias"], ["c1"], name="conv"),
        bn_node("c1", "y"),
    ]
    inits = [tensor("W", rng.normal(0, 0.5, (c_out, 3, 3, 3)))] + bn_params(rng, c_out)
    model = make_model(nodes, [vinfo("x", [1, 3, 5, 5])], [vinfo("y", [1, c_out, 3, 3])], inits)
    result = fold_and_check(model)
    assert [n.op_type for n in result.model.graph.node] == ["Conv"]
    assert "W" not in {t.name for t in result.model.graph.initializer}


def test_identity_transpose_pair_is_looked_through(rng):
    """TensorFlow (tf2onnx without its optimizer): Conv → Transpose(NHWC) → Transpose(NCHW) → BN."""
    model = conv_bn_model(rng)
    conv = model.graph.node[0]
    conv.output[0] = "conv_nchw"
    model.graph.node.insert(1, helper.make_node("Transpose", ["conv_nchw"], ["nhwc"], perm=[0, 2, 3, 1]))
    model.graph.node.insert(2, helper.make_node("Transpose", ["nhwc"], ["conv_out"], perm=[0, 3, 1, 2]))
    result = fold_and_check(model)
    assert count_ops(result.model, "Transpose") == 0
    assert result.plan.folds[0].through


def test_channel_moving_transpose_is_refused(rng):
    """A Transpose chain that moves the channel axis is not looked through."""
    model = conv_bn_model(rng, c_out=8, spatial=(8, 8), conv_attrs={"pads": [1, 1, 1, 1]})
    conv = model.graph.node[0]
    conv.output[0] = "conv_nchw"
    model.graph.node.insert(1, helper.make_node("Transpose", ["conv_nchw"], ["conv_out"], perm=[0, 2, 1, 3]))
    result = fold_and_check(model, expect_left=1, run=False)
    assert result.plan.left[0].reason == "unsupported-producer"


def test_bn_only_function_is_inlined_to_fold(rng, tmp_path):
    """export_modules_as_functions: BN wrapped alone in a function, the Conv outside; fuse inlines
    the function so each call site folds, and leaves no bnfold tag in the output."""
    c = 4
    bn_fn = helper.make_function(
        "torch.nn", "BatchNorm2d", ["fx", "s", "b", "m", "v"], ["fy"],
        [helper.make_node("BatchNormalization", ["fx", "s", "b", "m", "v"], ["fy"])],
        [helper.make_opsetid("", 17)])
    inits = [tensor("W1", rng.normal(0, 0.5, (c, c, 3, 3))), tensor("W2", rng.normal(0, 0.5, (c, c, 3, 3)))]
    inits += bn_params(rng, c, prefix="bn1") + bn_params(rng, c, prefix="bn2")
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("BatchNorm2d", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["h"], domain="torch.nn"),
             helper.make_node("Conv", ["h", "W2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("BatchNorm2d", ["c2", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"], ["y"], domain="torch.nn")]
    model = make_model(nodes, [vinfo("x", [1, c, 5, 5])], [vinfo("y", [1, c, 5, 5])], inits,
                       functions=[bn_fn], extra_opsets=[("torch.nn", 1)])
    result = fold_and_check(model)
    assert len(result.plan.folds) == 2 and not result.model.functions
    assert "bnfold.origin" not in result.model.SerializeToString().decode("latin-1")
    from bnfold.inspection import inspect_model

    onnx.save(model, str(tmp_path / "fn.onnx"))
    (bn,) = inspect_model(tmp_path / "fn.onnx").batchnorms
    assert bn.fold.foldable and "inlined" in bn.fold.detail


@pytest.mark.parametrize("noop", ["Identity", "Dropout"])
def test_identity_and_inference_dropout_are_looked_through(rng, noop):
    """Paddle exports Conv → Identity → BN; an inference Dropout is an identity too."""
    model = conv_bn_model(rng)
    model.graph.node[0].output[0] = "conv_raw"
    model.graph.node.insert(1, helper.make_node(noop, ["conv_raw"], ["conv_out"]))
    result = fold_and_check(model)
    assert count_ops(result.model, noop) == 0 and result.plan.folds[0].through


def test_training_dropout_is_not_looked_through(rng):
    """A Dropout whose training_mode input is true is not an identity: not folded."""
    model = conv_bn_model(rng)
    model.graph.node[0].output[0] = "conv_raw"
    model.graph.initializer.extend([tensor("ratio", 0.5), tensor("train", True, np.bool_)])
    model.graph.node.insert(1, helper.make_node("Dropout", ["conv_raw", "ratio", "train"], ["conv_out"]))
    result = fold_and_check(model, expect_left=1, run=False)
    assert result.plan.left[0].reason == "unsupported-producer"
