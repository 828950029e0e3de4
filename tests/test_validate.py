"""Tests of bnfold.validate: end-to-end comparison, per-fold attribution, inputs, providers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console

from bnfold.errors import InputError
from bnfold.report_validation import render_validation, validation_markdown
from bnfold.validate import (
    FOLD_TOLERANCES,
    OUTPUT_TOLERANCES,
    ROUNDING_NOTE,
    FoldComparison,
    FoldProbe,
    OutputComparison,
    ValidationResult,
    cuda_status,
    parse_shape_spec,
    resolve_provider,
    validate_models,
)

CUDA_AVAILABLE = cuda_status()[0]
OPSET = [helper.make_opsetid("", 17)]


# ---------------------------------------------------------------------------------------------
# Model builders


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=8)
    onnx.checker.check_model(model)
    return model


def _bn_params(
    rng: np.random.Generator, name: str, channels: int, dtype=np.float32
) -> list[onnx.TensorProto]:
    """Non-trivial BN statistics: var in [0.01, 0.1] so that epsilon 1e-2 matters."""
    arrays = {
        f"{name}.scale": rng.normal(1.0, 0.3, channels),
        f"{name}.bias": rng.normal(0.0, 0.3, channels),
        f"{name}.mean": rng.normal(0.0, 0.5, channels),
        f"{name}.var": rng.uniform(0.01, 0.1, channels),
    }
    return [numpy_helper.from_array(a.astype(dtype), n) for n, a in arrays.items()]


def _conv(rng, name, cin, cout, src, dst, *, bias=True, dtype=np.float32):
    inits = [
        numpy_helper.from_array(
            rng.normal(0, 1 / np.sqrt(cin * 9), (cout, cin, 3, 3)).astype(dtype), f"{name}.W"
        )
    ]
    ins = [src, f"{name}.W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(dtype), f"{name}.B"))
        ins.append(f"{name}.B")
    return helper.make_node("Conv", ins, [dst], name=name, pads=[1, 1, 1, 1]), inits


def _bn(rng, name, channels, src, dst, eps=1e-2, dtype=np.float32):
    node = helper.make_node(
        "BatchNormalization",
        [src, f"{name}.scale", f"{name}.bias", f"{name}.mean", f"{name}.var"],
        [dst],
        name=name,
        epsilon=eps,
    )
    return node, _bn_params(rng, name, channels, dtype)


def make_convnet(
    seed=0, *, relu=True, pool=True, input_shape=("N", 3, 8, 8), dtype=np.float32
) -> onnx.ModelProto:
    """x -> conv1 -> bn1 -> relu -> conv2 -> bn2 -> GlobalAveragePool -> y."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes, inits = [], []
    for node, params in (
        _conv(rng, "conv1", 3, 8, "x", "c1", dtype=dtype),
        _bn(rng, "bn1", 8, "c1", "b1", dtype=dtype),
    ):
        nodes.append(node)
        inits += params
    second_in = "b1"
    if relu:
        nodes.append(helper.make_node("Relu", ["b1"], ["r1"], name="relu1"))
        second_in = "r1"
    for node, params in (
        _conv(rng, "conv2", 8, 8, second_in, "c2", bias=False, dtype=dtype),
        _bn(rng, "bn2", 8, "c2", "b2", dtype=dtype),
    ):
        nodes.append(node)
        inits += params
    batch, _, height, width = input_shape
    out_shape = [batch, 8, 1, 1] if pool else [batch, 8, height, width]
    if pool:
        nodes.append(helper.make_node("GlobalAveragePool", ["b2"], ["y"], name="gap"))
    else:
        nodes.append(helper.make_node("Identity", ["b2"], ["y"], name="out"))
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", elem, list(input_shape))],
        [helper.make_tensor_value_info("y", elem, out_shape)],
        inits,
    )


def fold_conv_bn(
    model, conv_name, bn_name, *, drop_eps=False, scale_channel=None
) -> onnx.ModelProto:
    """Fold BN into the Conv before it, in float64: k = scale/sqrt(var+eps), W' = W*k,
    B' = (B-mean)*k + bias; the Conv then writes the BN's output name."""
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    graph = folded.graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    conv = next(n for n in graph.node if n.name == conv_name)
    bn = next(n for n in graph.node if n.name == bn_name)
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), np.float32(1e-5))
    eps = float(np.float32(eps))  # the attribute is a float32, and onnxruntime uses it as such
    scale, bias, mean, var = (inits[n] for n in bn.input[1:5])
    k = scale / np.sqrt(var if drop_eps else var + eps)
    if scale_channel is not None:
        k[scale_channel] *= 1.01
    weight = inits[conv.input[1]]
    dtype = helper.tensor_dtype_to_np_dtype(
        next(t for t in graph.initializer if t.name == conv.input[1]).data_type
    )
    conv_bias = inits[conv.input[2]] if len(conv.input) > 2 else np.zeros(weight.shape[0])
    new_w = numpy_helper.from_array(
        (weight * k[:, None, None, None]).astype(dtype), f"{conv_name}.W_folded"
    )
    new_b = numpy_helper.from_array(
        ((conv_bias - mean) * k + bias).astype(dtype), f"{conv_name}.B_folded"
    )
    graph.initializer.extend([new_w, new_b])
    del conv.input[1:]
    conv.input.extend([new_w.name, new_b.name])
    conv.output[0] = bn.output[0]
    graph.node.remove(bn)
    _drop_unused_initializers(graph)
    onnx.checker.check_model(folded)
    return folded


def _drop_unused_initializers(graph):
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


CONVNET_PROBES = (FoldProbe("bn1", "conv1", "b1"), FoldProbe("bn2", "conv2", "b2"))


def _save(model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def convnet(tmp_path) -> Path:
    return _save(make_convnet(), tmp_path / "original.onnx")


def _folded(original_path: Path, tmp_path: Path, name="folded.onnx", **bn1_kwargs) -> Path:
    model = onnx.load(str(original_path))
    model = fold_conv_bn(model, "conv1", "bn1", **bn1_kwargs)
    model = fold_conv_bn(model, "conv2", "bn2")
    return _save(model, tmp_path / name)


def _fold(result: ValidationResult, batchnorm: str) -> FoldComparison:
    return next(f for f in result.folds if f.batchnorm == batchnorm)


def _relu_model(int_input: bool = False) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Original y = Relu(x), candidate y = x: they differ exactly by max(-x, 0)."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]
    original_nodes = [helper.make_node("Relu", ["x"], ["y"])]
    candidate_nodes = [helper.make_node("Identity", ["x"], ["y"])]
    if int_input:
        inputs.append(helper.make_tensor_value_info("k", TensorProto.INT64, [4]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.INT64, [4]))
        original_nodes.append(helper.make_node("Identity", ["k"], ["z"]))
        candidate_nodes.append(helper.make_node("Identity", ["k"], ["z"]))
    return _model(original_nodes, inputs, outputs, []), _model(candidate_nodes, inputs, outputs, [])


# ---------------------------------------------------------------------------------------------
# End to end and per fold


def test_identical_models_pass(convnet):
    """The original against itself: zero error everywhere, every fold probe exact."""
    result = validate_models(convnet, convnet, folds=CONVNET_PROBES, provider="cpu", samples=2)
    assert result.passed
    assert result.provider == "cpu" and result.reference_provider == "cpu"
    (output,) = result.outputs
    assert output.max_abs == 0.0 and output.mismatches == 0 and output.cosine == 1.0
    assert [f.passed for f in result.folds] == [True, True]
    assert all(f.max_abs == 0.0 for f in result.folds)


def test_correct_fold_passes_end_to_end_and_per_fold(convnet, tmp_path):
    """A float64-computed fold cast to float32 passes both checks."""
    folded = _folded(convnet, tmp_path)
    result = validate_models(convnet, folded, folds=CONVNET_PROBES, provider="cpu", samples=3)
    assert result.passed, result
    assert result.outputs[0].passed and result.outputs[0].cosine > 0.999999
    for fold in result.folds:
        assert fold.passed is True
        assert 0.0 < fold.max_abs <= fold.atol + fold.rtol * fold.reference_max
        assert fold.normalized_error < 1e-6
    assert ROUNDING_NOTE not in result.notes


def test_dropped_epsilon_fails_end_to_end_and_in_attribution(convnet, tmp_path):
    """Epsilon left out of bn1's fold: the output fails, bn1 fails alone, bn2 still passes."""
    folded = _folded(convnet, tmp_path, drop_eps=True)
    result = validate_models(convnet, folded, folds=CONVNET_PROBES, provider="cpu")
    assert not result.passed
    assert not result.outputs[0].passed and result.outputs[0].mismatches > 0
    assert _fold(result, "bn1").passed is False
    assert _fold(result, "bn2").passed is True
    assert result.folds[0].batchnorm == "bn1"  # worst first
    assert any("bn1" in note and "fail on their own" in note for note in result.notes)


def test_one_channel_scale_off_by_one_percent_fails_in_attribution(convnet, tmp_path):
    """bn1's channel 5 scaled by 1.01: attribution names bn1 and only bn1."""
    folded = _folded(convnet, tmp_path, scale_channel=5)
    result = validate_models(convnet, folded, folds=CONVNET_PROBES, provider="cpu")
    assert not result.passed
    failed = [f.batchnorm for f in result.folds if f.passed is False]
    assert failed == ["bn1"]
    assert _fold(result, "bn1").normalized_error > 10 * FOLD_TOLERANCES["float32"][1]


def test_float16_model_correct_fold_passes_and_dropped_epsilon_fails(tmp_path):
    """float16: the float16 fold limits accept a correct fold and catch a dropped epsilon."""
    original = _save(make_convnet(dtype=np.float16), tmp_path / "original.onnx")
    good = validate_models(
        original, _folded(original, tmp_path), folds=CONVNET_PROBES, provider="cpu", samples=2
    )
    assert good.outputs[0].dtype == "float16"
    assert good.passed, good
    assert all(f.rtol == FOLD_TOLERANCES["float16"][1] for f in good.folds)
    bad = validate_models(
        original,
        _folded(original, tmp_path, name="bad.onnx", drop_eps=True),
        folds=CONVNET_PROBES,
        provider="cpu",
    )
    assert [f.batchnorm for f in bad.folds if f.passed is False] == ["bn1"]


def test_adjacent_folds_one_feeding_the_next(tmp_path):
    """conv1->bn1->conv2->bn2: bn2's slice reads b1, which bn1's slice writes; both attribute."""
    original = _save(make_convnet(relu=False), tmp_path / "original.onnx")
    folded = _folded(original, tmp_path)
    result = validate_models(original, folded, folds=CONVNET_PROBES, provider="cpu")
    assert [f.passed for f in result.folds] == [True, True]
    broken = _folded(original, tmp_path, name="broken.onnx", drop_eps=True)
    result = validate_models(original, broken, folds=CONVNET_PROBES, provider="cpu")
    assert _fold(result, "bn1").passed is False and _fold(result, "bn2").passed is True


def test_matmul_add_fold_slice_of_two_nodes(tmp_path):
    """A fold rewritten as MatMul -> Add with a new intermediate name is attributed as one slice."""
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.2, (16, 6))
    b = rng.normal(0, 0.1, 6)
    scale, bias, mean, var = (
        rng.normal(1, 0.3, 6),
        rng.normal(0, 0.3, 6),
        rng.normal(0, 0.5, 6),
        rng.uniform(0.01, 0.1, 6),
    )
    f32 = lambda a, n: numpy_helper.from_array(np.asarray(a, np.float32), n)  # noqa: E731
    io_ = (
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
    )
    original = _model(
        [
            helper.make_node("MatMul", ["x", "W"], ["m"], name="matmul"),
            helper.make_node("Add", ["m", "B"], ["a"], name="add"),
            helper.make_node(
                "BatchNormalization",
                ["a", "s", "b", "mu", "v"],
                ["bn_out"],
                name="bn",
                epsilon=1e-2,
            ),
            helper.make_node("Relu", ["bn_out"], ["y"], name="relu"),
        ],
        *io_,
        [f32(w, "W"), f32(b, "B"), f32(scale, "s"), f32(bias, "b"), f32(mean, "mu"), f32(var, "v")],
    )
    k = scale / np.sqrt(var + float(np.float32(1e-2)))
    candidate = _model(
        [
            helper.make_node("MatMul", ["x", "W_folded"], ["m_folded"], name="matmul"),
            helper.make_node("Add", ["m_folded", "B_folded"], ["bn_out"], name="add"),
            helper.make_node("Relu", ["bn_out"], ["y"], name="relu"),
        ],
        *io_,
        [f32(w * k, "W_folded"), f32((b - mean) * k + bias, "B_folded")],
    )
    probe = FoldProbe("bn", "matmul", "bn_out")
    result = validate_models(
        _save(original, tmp_path / "o.onnx"),
        _save(candidate, tmp_path / "c.onnx"),
        folds=[probe],
        provider="cpu",
        shapes={"x": (4, 16)},
    )
    assert result.passed and result.folds[0].passed is True


def test_probe_tensor_that_is_a_graph_output(tmp_path):
    """The BN writes the graph output itself: the fold is attributed and the output kept."""
    model = make_convnet(pool=False)
    graph = model.graph
    graph.node.remove(next(n for n in graph.node if n.name == "out"))
    next(n for n in graph.node if n.name == "bn2").output[0] = "y"
    original = _save(model, tmp_path / "original.onnx")
    candidate = _save(fold_conv_bn(model, "conv2", "bn2"), tmp_path / "folded.onnx")
    result = validate_models(
        original, candidate, folds=[FoldProbe("bn2", "conv2", "y")], provider="cpu"
    )
    assert [o.name for o in result.outputs] == ["y"]
    assert result.passed and result.folds[0].passed is True


def test_rounding_note_when_folds_pass_but_outputs_do_not(convnet, tmp_path):
    """Exact tolerances on outputs fail a correct fold end to end; the note blames rounding."""
    folded = _folded(convnet, tmp_path)
    result = validate_models(
        convnet, folded, folds=CONVNET_PROBES, provider="cpu", atol=0.0, rtol=0.0
    )
    assert all(f.passed for f in result.folds)
    assert not result.outputs[0].passed and not result.passed
    assert ROUNDING_NOTE in result.notes


def test_amplified_rounding_passes_with_default_tolerances(convnet, tmp_path, monkeypatch):
    """Default tolerances: outputs beyond them but every fold exact and cosine ~1 pass, with a note."""
    import bnfold.validate as validate

    monkeypatch.setattr(validate, "OUTPUT_TOLERANCES", {k: (0.0, 0.0) for k in validate.OUTPUT_TOLERANCES})
    folded = _folded(convnet, tmp_path)
    result = validate_models(convnet, folded, folds=CONVNET_PROBES, provider="cpu")
    assert not result.outputs[0].passed and result.passed
    assert validate.AMPLIFIED_NOTE in result.notes


def test_missing_probe_tensor_is_reported_not_attributed(convnet, tmp_path):
    """A probe naming a tensor that does not exist is kept, with passed=None and a reason."""
    folded = _folded(convnet, tmp_path)
    probes = CONVNET_PROBES + (FoldProbe("bn9", "conv9", "nowhere"),)
    result = validate_models(convnet, folded, folds=probes, provider="cpu")
    ghost = _fold(result, "bn9")
    assert ghost.passed is None and ghost.max_abs is None
    assert "not in the original" in ghost.note
    assert result.passed  # not attributed is not failed
    assert any("bn9" in note and "not attributed" in note for note in result.notes)


def test_slice_onnxruntime_refuses_is_not_attributed_and_others_still_are(convnet, tmp_path):
    """bn1's tensor becomes float64 in the candidate: its slice cannot run, bn2 is still checked."""
    model = fold_conv_bn(fold_conv_bn(make_convnet(), "conv1", "bn1"), "conv2", "bn2")
    graph = model.graph
    conv1 = next(n for n in graph.node if n.name == "conv1")
    relu = next(n for n in graph.node if n.name == "relu1")
    conv1.output[0] = "c1_folded"
    relu.input[0] = "b1_float"
    graph.node.insert(1, helper.make_node("Cast", ["c1_folded"], ["b1"], to=TensorProto.DOUBLE))
    graph.node.insert(2, helper.make_node("Cast", ["b1"], ["b1_float"], to=TensorProto.FLOAT))
    candidate = _save(model, tmp_path / "cast.onnx")
    result = validate_models(convnet, candidate, folds=CONVNET_PROBES, provider="cpu")
    assert _fold(result, "bn1").passed is None and "onnxruntime" in _fold(result, "bn1").note
    assert _fold(result, "bn2").passed is True
    assert result.passed


# ---------------------------------------------------------------------------------------------
# Signatures


def test_different_output_signature_is_input_error(convnet, tmp_path):
    """A candidate whose output is named differently is refused, naming the output."""
    model = make_convnet()
    model.graph.node[-1].output[0] = "logits"
    model.graph.output[0].name = "logits"
    other = _save(model, tmp_path / "renamed.onnx")
    with pytest.raises(InputError, match="'y'"):
        validate_models(convnet, other, provider="cpu")


def test_different_output_dtype_is_input_error(tmp_path):
    """Same output name, different element type: refused, naming both types."""
    original, _ = _relu_model()
    candidate = _model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2, 3])],
        [],
    )
    with pytest.raises(InputError, match="float32 in the original but float64"):
        validate_models(
            _save(original, tmp_path / "o.onnx"),
            _save(candidate, tmp_path / "c.onnx"),
            provider="cpu",
        )


def test_different_input_names_is_input_error(convnet, tmp_path):
    """A candidate whose input is named differently is refused, naming the input."""
    model = make_convnet()
    model.graph.input[0].name = "image"
    model.graph.node[0].input[0] = "image"
    other = _save(model, tmp_path / "renamed.onnx")
    with pytest.raises(InputError, match="input named 'x'"):
        validate_models(convnet, other, provider="cpu")


# ---------------------------------------------------------------------------------------------
# Inputs and shapes


def test_npz_inputs_are_the_values_used(tmp_path):
    """The .npz values are fed: the Relu/Identity difference equals max(-x, 0) of the file."""
    original, candidate = _relu_model(int_input=True)
    o, c = _save(original, tmp_path / "o.onnx"), _save(candidate, tmp_path / "c.onnx")
    x = np.array([[1.0, -2.5, 3.0], [-0.5, 0.0, 4.0]], np.float32)
    np.savez(tmp_path / "sample.npz", x=x, k=np.arange(4, dtype=np.int64))
    result = validate_models(o, c, inputs=tmp_path / "sample.npz", provider="cpu")
    by_name = {out.name: out for out in result.outputs}
    assert result.samples == 1
    assert by_name["y"].max_abs == 2.5
    assert by_name["y"].mean_abs == pytest.approx(3.0 / 6)
    assert by_name["y"].mismatches == 2
    assert by_name["z"].passed and by_name["z"].atol == 0.0
    np.savez(tmp_path / "zeros.npz", x=np.zeros((2, 3), np.float32), k=np.zeros(4, np.int64))
    zeros = validate_models(o, c, inputs=tmp_path / "zeros.npz", provider="cpu")
    assert zeros.passed and zeros.outputs[0].max_abs == 0.0
    assert not validate_models(o, c, provider="cpu").passed  # random inputs have negatives


def test_random_inputs_for_every_dtype_reach_the_models(tmp_path):
    """float16/bfloat16/float64/int/bool inputs are generated; a negated bfloat16 path shows."""
    types = {
        "h": TensorProto.FLOAT16,
        "bf": TensorProto.BFLOAT16,
        "d": TensorProto.DOUBLE,
        "i": TensorProto.INT32,
        "flag": TensorProto.BOOL,
    }
    inputs = [helper.make_tensor_value_info(k, t, ["N", 3]) for k, t in types.items()]
    outputs = [helper.make_tensor_value_info(f"{k}_out", t, ["N", 3]) for k, t in types.items()]
    original = _model(
        [helper.make_node("Identity", [k], [f"{k}_out"]) for k in types], inputs, outputs, []
    )
    candidate_nodes = [helper.make_node("Identity", [k], [f"{k}_out"]) for k in types if k != "bf"]
    candidate_nodes += [
        helper.make_node("Cast", ["bf"], ["bf_float"], to=TensorProto.FLOAT),
        helper.make_node("Neg", ["bf_float"], ["bf_neg"]),
        helper.make_node("Cast", ["bf_neg"], ["bf_out"], to=TensorProto.BFLOAT16),
    ]
    candidate = _model(candidate_nodes, inputs, outputs, [])
    result = validate_models(
        _save(original, tmp_path / "o.onnx"), _save(candidate, tmp_path / "c.onnx"), provider="cpu"
    )
    by_name = {o.name: o for o in result.outputs}
    assert by_name["bf_out"].dtype == "bfloat16" and by_name["bf_out"].cosine == pytest.approx(-1.0)
    assert by_name["bf_out"].max_abs > 0 and not by_name["bf_out"].passed
    assert all(by_name[f"{k}_out"].passed for k in ("h", "d", "i", "flag"))
    assert by_name["i_out"].atol == 0.0 and by_name["d_out"].rtol == OUTPUT_TOLERANCES["float64"][1]


def test_folder_of_npy_samples(tmp_path):
    """Each .npy in a folder is one sample of a single-input model."""
    original, candidate = _relu_model()
    o, c = _save(original, tmp_path / "o.onnx"), _save(candidate, tmp_path / "c.onnx")
    folder = tmp_path / "inputs"
    folder.mkdir()
    np.save(folder / "a.npy", np.full((2, 3), -1.0, np.float32))
    np.save(folder / "b.npy", np.full((2, 3), -7.0, np.float32))
    result = validate_models(o, c, inputs=folder, provider="cpu")
    assert result.samples == 2
    assert result.outputs[0].max_abs == 7.0
    assert result.outputs[0].total == 12


def test_npz_with_unknown_or_mistyped_input_is_input_error(tmp_path):
    """An .npz naming an input the model lacks, or of the wrong dtype, is refused."""
    original, candidate = _relu_model()
    o, c = _save(original, tmp_path / "o.onnx"), _save(candidate, tmp_path / "c.onnx")
    np.savez(tmp_path / "bad_name.npz", x=np.zeros((2, 3), np.float32), extra=np.zeros(1))
    with pytest.raises(InputError, match="unknown input 'extra'"):
        validate_models(o, c, inputs=tmp_path / "bad_name.npz", provider="cpu")
    np.savez(tmp_path / "bad_type.npz", x=np.zeros((2, 3), np.float64))
    with pytest.raises(InputError, match="float64 but the model wants float32"):
        validate_models(o, c, inputs=tmp_path / "bad_type.npz", provider="cpu")
    np.savez(tmp_path / "bad_shape.npz", x=np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match="fixes dim 0 to 2"):
        validate_models(o, c, inputs=tmp_path / "bad_shape.npz", provider="cpu")


def test_shapes_set_symbolic_dims_and_defaults_are_noted(tmp_path):
    """--shape fixes N, H, W; without it each symbolic dim is 1 and gets a note."""
    model = make_convnet(pool=False, input_shape=("N", 3, "H", "W"))
    path = _save(model, tmp_path / "o.onnx")
    shaped = validate_models(path, path, provider="cpu", shapes={"x": (2, 3, 5, 7)})
    assert shaped.outputs[0].total == 2 * 8 * 5 * 7
    assert not any("set to 1" in note for note in shaped.notes)
    defaulted = validate_models(path, path, provider="cpu")
    assert defaulted.outputs[0].total == 8
    assert "input 'x' dim 0 ('N') set to 1; use --shape" in defaulted.notes
    assert sum("set to 1" in note for note in defaulted.notes) == 3


def test_unknown_name_in_shapes_is_input_error(convnet):
    """--shape for an input the model does not have is refused, naming it."""
    with pytest.raises(InputError, match="unknown input 'image'"):
        validate_models(convnet, convnet, provider="cpu", shapes={"image": (1, 3, 8, 8)})


def test_shape_conflicting_with_static_dim_is_input_error(convnet):
    """--shape that contradicts a static dim (3 channels) is refused."""
    with pytest.raises(InputError, match="fixes dim 1 to 3"):
        validate_models(convnet, convnet, provider="cpu", shapes={"x": (1, 4, 8, 8)})


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("x=1x3x224x224", ("x", (1, 3, 224, 224))),
        (" in:0 = 2X5 ", ("in:0", (2, 5))),
        ("a=b=7", ("a=b", (7,))),
    ],
)
def test_parse_shape_spec_accepts(spec, expected):
    """NAME=DIMxDIM... parses, with spaces, upper-case X and '=' inside the name."""
    assert parse_shape_spec(spec) == expected


@pytest.mark.parametrize("spec", ["x", "x=", "=1x2", "x=1xx2", "x=0x3", "x=-1x3", "x=1.5", "x=ax3"])
def test_parse_shape_spec_rejects_garbage(spec):
    """Malformed --shape values raise InputError."""
    with pytest.raises(InputError):
        parse_shape_spec(spec)


def test_random_inputs_are_seeded(convnet, tmp_path):
    """Same seed, same numbers; another seed, other numbers."""
    folded = _folded(convnet, tmp_path)
    first = validate_models(convnet, folded, provider="cpu", seed=7)
    again = validate_models(convnet, folded, provider="cpu", seed=7)
    other = validate_models(convnet, folded, provider="cpu", seed=8)
    assert first.outputs == again.outputs
    assert (
        first.outputs[0].max_abs != other.outputs[0].max_abs
        or first.outputs[0].mean_abs != other.outputs[0].mean_abs
    )


# ---------------------------------------------------------------------------------------------
# Providers


def test_unknown_provider_is_input_error():
    """Only auto, cpu and cuda are accepted."""
    with pytest.raises(InputError, match="unknown provider"):
        resolve_provider("tpu")


def test_provider_resolution_follows_the_cuda_probe(monkeypatch):
    """CUDA working: auto/cuda pick it, TF32 off. Not working: auto notes why, cuda refuses."""
    import bnfold.validate as validate

    monkeypatch.setattr(validate, "cuda_status", lambda: (True, ""))
    for name in ("auto", "cuda", " CUDA "):
        providers, note = resolve_provider(name)
        assert providers == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
        assert note is None
    assert resolve_provider("cpu") == (["CPUExecutionProvider"], None)
    monkeypatch.setattr(validate, "cuda_status", lambda: (False, "no driver"))
    assert resolve_provider("auto") == (
        ["CPUExecutionProvider"],
        "CUDA not available, ran on CPU: no driver",
    )
    with pytest.raises(InputError, match="no driver"):
        resolve_provider("cuda")


@pytest.mark.skipif(CUDA_AVAILABLE, reason="CUDA is available here")
def test_auto_provider_without_cuda_falls_back_to_cpu_with_a_note():
    """auto without CUDA: CPU, and a one-line note saying why."""
    providers, note = resolve_provider("auto")
    assert providers == ["CPUExecutionProvider"]
    assert note and note.startswith("CUDA not available") and "\n" not in note


@pytest.mark.skipif(CUDA_AVAILABLE, reason="CUDA is available here")
def test_cuda_provider_without_cuda_is_input_error(convnet):
    """provider='cuda' where CUDA cannot run is refused."""
    with pytest.raises(InputError, match="CUDA is not available"):
        validate_models(convnet, convnet, provider="cuda")


@pytest.mark.skipif(not CUDA_AVAILABLE, reason="CUDAExecutionProvider not available")
def test_validation_on_cuda(convnet, tmp_path):
    """A correct fold validated on CUDA (TF32 off) passes, and says it ran on CUDA."""
    folded = _folded(convnet, tmp_path)
    result = validate_models(convnet, folded, folds=CONVNET_PROBES, provider="cuda", samples=2)
    assert result.provider == "cuda" and result.reference_provider == "cuda"
    assert result.passed, result
    providers, note = resolve_provider("cuda")
    assert providers[0] == ("CUDAExecutionProvider", {"use_tf32": "0"}) and note is None


# ---------------------------------------------------------------------------------------------
# External data


def _save_external(model, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    return path


def test_external_data_models_attribute_folds(convnet, tmp_path):
    """External weights (same file name in three folders) validate and attribute."""
    original = _save_external(make_convnet(), tmp_path / "orig")
    good = fold_conv_bn(fold_conv_bn(make_convnet(), "conv1", "bn1"), "conv2", "bn2")
    bad = fold_conv_bn(fold_conv_bn(make_convnet(), "conv1", "bn1"), "conv2", "bn2", drop_eps=True)
    good_path = _save_external(good, tmp_path / "good")
    bad_path = _save_external(bad, tmp_path / "bad")
    assert (
        not onnx.load(str(good_path), load_external_data=False)
        .graph.initializer[0]
        .HasField("raw_data")
    )
    result = validate_models(original, good_path, folds=CONVNET_PROBES, provider="cpu")
    assert result.passed and [f.passed for f in result.folds] == [True, True]
    result = validate_models(original, bad_path, folds=CONVNET_PROBES, provider="cpu")
    assert _fold(result, "bn2").passed is False and _fold(result, "bn1").passed is True


# ---------------------------------------------------------------------------------------------
# Result form and rendering


def test_to_dict_has_exactly_the_schema_keys_and_dumps_to_json(convnet, tmp_path):
    """to_dict keys match schema 1 exactly; NaN becomes None; json.dumps accepts it."""
    folded = _folded(convnet, tmp_path, drop_eps=True)
    probes = CONVNET_PROBES + (FoldProbe("bn9", "conv9", "nowhere"),)
    result = validate_models(convnet, folded, folds=probes, provider="cpu")
    data = result.to_dict()
    assert set(data) == {
        "schema_version",
        "provider",
        "reference_provider",
        "seed",
        "samples",
        "outputs",
        "folds",
        "passed",
        "notes",
    }
    assert data["schema_version"] == 1
    assert set(data["outputs"][0]) == {
        "name",
        "dtype",
        "max_abs",
        "max_rel",
        "mean_abs",
        "cosine",
        "mismatches",
        "total",
        "atol",
        "rtol",
        "passed",
    }
    assert all(
        set(f) == {"batchnorm", "into", "max_abs", "max_rel", "passed"} for f in data["folds"]
    )
    assert [f["passed"] for f in data["folds"]] == [
        False,
        None,
        True,
    ]  # failed, not attributed, passed
    json.loads(json.dumps(data, allow_nan=False))
    nan_result = ValidationResult(
        "cpu",
        "cpu",
        0,
        1,
        (
            OutputComparison(
                "y", "float32", float("nan"), float("inf"), 0.0, 1.0, 1, 1, 1e-4, 1e-3, False
            ),
        ),
        (),
        False,
        (),
    )
    out = nan_result.to_dict()["outputs"][0]
    assert out["max_abs"] is None and out["max_rel"] is None
    json.dumps(nan_result.to_dict(), allow_nan=False)


def test_nan_against_nan_is_not_a_mismatch_but_nan_against_a_number_is(tmp_path):
    """Same-place NaNs agree; a NaN where the original has a number is a mismatch."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    # log of the input: NaN for negatives in both; the candidate adds NaN where x == 2.
    original = _model([helper.make_node("Log", ["x"], ["y"])], [x], [y], [])
    candidate = _model(
        [
            helper.make_node("Sub", ["x", "two"], ["d"]),
            helper.make_node("Div", ["d", "d"], ["one_or_nan"]),  # NaN where x == 2
            helper.make_node("Log", ["x"], ["l"]),
            helper.make_node("Mul", ["l", "one_or_nan"], ["y"]),
        ],
        [x],
        [y],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    o, c = _save(original, tmp_path / "o.onnx"), _save(candidate, tmp_path / "c.onnx")
    np.savez(tmp_path / "s.npz", x=np.array([-1.0, 1.0, 3.0, 5.0], np.float32))
    assert validate_models(o, c, inputs=tmp_path / "s.npz", provider="cpu").passed
    np.savez(tmp_path / "t.npz", x=np.array([-1.0, 2.0, 3.0, 5.0], np.float32))
    result = validate_models(o, c, inputs=tmp_path / "t.npz", provider="cpu")
    assert result.outputs[0].mismatches == 1 and not result.passed


def test_render_validation_and_markdown(convnet, tmp_path):
    """Rendering shows tables, notes and the verdict; folds past 20 collapse to '... N more'."""
    folded = _folded(convnet, tmp_path, drop_eps=True)
    result = validate_models(convnet, folded, folds=CONVNET_PROBES, provider="cpu")
    buffer = io.StringIO()
    render_validation(result, Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert "bn1" in text and "FAILED" in text and "y" in text
    many = ValidationResult(
        result.provider,
        result.reference_provider,
        0,
        1,
        result.outputs,
        tuple(
            FoldComparison(f"bn{i}", f"conv{i}", 1e-7, 1e-6, True, None, f"t{i}", 1.0, 1e-6, 1e-5)
            for i in range(25)
        ),
        True,
        ("a [bracketed] note",),
    )
    buffer = io.StringIO()
    render_validation(many, Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert "... 5 more" in text and "PASSED" in text and "a [bracketed] note" in text
    markdown = validation_markdown(result)
    assert "| bn1 |" in markdown and "**FAILED**" in markdown


def test_tolerance_tables_cover_the_float_types():
    """Both tables cover float16, bfloat16, float32, float64; fold atols are the tighter."""
    for table in (OUTPUT_TOLERANCES, FOLD_TOLERANCES):
        assert set(table) == {"float16", "bfloat16", "float32", "float64"}
    for dtype in OUTPUT_TOLERANCES:
        assert FOLD_TOLERANCES[dtype][0] <= OUTPUT_TOLERANCES[dtype][0]
