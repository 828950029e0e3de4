"""Loading models: unusable files fail with one clear line, and every supported model form loads.

Bad inputs are checked twice: through :func:`bnfold.modelio.load_model` (a ``ModelLoadError``
whose message names the file or the problem) and through the command line in a real subprocess
(exit status 2, exactly one stderr line starting ``bnfold: error:``, no traceback).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from builders import (bn_node, bn_params, conv_bn_model, make_model, save, session, tensor,
                      vinfo)
from onnx import TensorProto, helper

from bnfold.errors import InputError, ModelLoadError
from bnfold.inspection import inspect_model
from bnfold.modelio import load_model

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_models"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python cli.py ARGS`` from the repository root, as a user would run it."""
    return subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bnfold: error: ")
    for needle in needles:
        assert needle in lines[0]


def external_model(folder: Path, name: str = "m.onnx", location: str = "m.data", seed: int = 0) -> Path:
    """A Conv+BN model whose every tensor lives in ``folder/location``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = conv_bn_model(np.random.default_rng(seed))
    onnx.save(model, str(folder / name), save_as_external_data=True, location=location,
              size_threshold=0)
    return folder / name


def relocate_external(model_path: Path, out: Path, location: str) -> Path:
    """A copy of ``model_path`` (its data not loaded) whose tensors point at ``location``."""
    model = onnx.load(str(model_path), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(out))
    return out


def unnamed(model: onnx.ModelProto) -> onnx.ModelProto:
    for node in model.graph.node:
        node.name = ""
    return model


# -- bad inputs --------------------------------------------------------------------------------

def _missing(tmp: Path) -> Path:
    return tmp / "nope.onnx"


def _directory(tmp: Path) -> Path:
    (tmp / "folder.onnx").mkdir()
    return tmp / "folder.onnx"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.onnx").write_bytes(b"")
    return tmp / "empty.onnx"


def _random_bytes(tmp: Path) -> Path:
    (tmp / "random.onnx").write_bytes(np.random.default_rng(1234).bytes(4096))
    return tmp / "random.onnx"


def _truncated(tmp: Path) -> Path:
    data = (SAMPLES / "resnet_small.onnx").read_bytes()
    (tmp / "truncated.onnx").write_bytes(data[: len(data) // 2])
    return tmp / "truncated.onnx"


def _text(tmp: Path) -> Path:
    (tmp / "notes.onnx").write_text("ir_version: 8\nThis is a text file, not a model.\n")
    return tmp / "notes.onnx"


def _tensor_proto(tmp: Path) -> Path:
    (tmp / "tensor.onnx").write_bytes(tensor("w", np.ones(16)).SerializeToString())
    return tmp / "tensor.onnx"


def _no_graph(tmp: Path) -> Path:
    model = onnx.ModelProto(ir_version=8, producer_name="exporter")
    model.opset_import.add(domain="", version=17)
    (tmp / "nograph.onnx").write_bytes(model.SerializeToString())
    return tmp / "nograph.onnx"


def _missing_external(tmp: Path) -> Path:
    path = external_model(tmp / "ext")
    (tmp / "ext" / "m.data").unlink()
    return path


def _external_outside(tmp: Path) -> Path:
    src = external_model(tmp / "src")
    (tmp / "models").mkdir()
    shutil.copy(tmp / "src" / "m.data", tmp / "secret.data")
    return relocate_external(src, tmp / "models" / "m.onnx", "../secret.data")


def _external_absolute(tmp: Path) -> Path:
    src = external_model(tmp / "src")
    (tmp / "models").mkdir()
    return relocate_external(src, tmp / "models" / "m.onnx", str((tmp / "src" / "m.data").resolve()))


def _external_symlink_out(tmp: Path) -> Path:
    src = external_model(tmp / "src")
    (tmp / "models").mkdir()
    os.symlink(tmp / "src" / "m.data", tmp / "models" / "link.data")
    return relocate_external(src, tmp / "models" / "m.onnx", "link.data")


def _external_short(tmp: Path) -> Path:
    src = external_model(tmp / "src")
    (tmp / "src" / "short.data").write_bytes((tmp / "src" / "m.data").read_bytes()[:40])
    return relocate_external(src, tmp / "src" / "short.onnx", "short.data")


# (builder, words the message must contain)
BAD_INPUTS = {
    "missing path": (_missing, "no such file"),
    "a directory": (_directory, "directory"),
    "an empty file": (_empty, "empty"),
    "random bytes": (_random_bytes, "not a valid ONNX model"),
    "a truncated file": (_truncated, "not a valid ONNX model"),
    "a text file": (_text, "not a valid ONNX model"),
    "a TensorProto, not a model": (_tensor_proto, "ONNX model"),
    "a model proto with no graph": (_no_graph, "no graph"),
    "missing external data": (_missing_external, "missing"),
    "external data outside the folder": (_external_outside, "outside the model's folder"),
    "external data by absolute path": (_external_absolute, "absolute path"),
    "external data through a symlink out of the folder": (_external_symlink_out, "outside the model's folder"),
    "external data shorter than declared": (_external_short, "runs past the end"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_load_model_rejects_bad_input(tmp_path, case):
    """load_model raises ModelLoadError (an InputError) naming the file and the problem."""
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert isinstance(info.value, InputError)
    message = str(info.value)
    assert str(path) in message
    assert words in message
    assert "\n" not in message


FILE_LEVEL = ["random bytes", "a truncated file", "a text file", "a TensorProto, not a model",
              "a model proto with no graph", "missing external data", "external data outside the folder"]


@pytest.mark.parametrize("case", FILE_LEVEL)
def test_lazy_parse_rejects_bad_input(tmp_path, case):
    """The lazy parser used for large files (forced with lazy_threshold=0) rejects them too."""
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path, lazy_threshold=0)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_inspect_rejects_bad_input(tmp_path, case):
    """`bnfold inspect BAD` exits 2 with one 'bnfold: error:' line and no traceback."""
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    proc = run_cli("inspect", path)
    assert_one_line_error(proc, str(path), words)
    assert proc.stdout == ""


def test_cli_bad_input_among_good_models_exits_2(tmp_path):
    """One unreadable model among good ones still exits 2 with one error line."""
    bad = _empty(tmp_path)
    proc = run_cli("inspect", SAMPLES / "resnet_small.onnx", bad, "--format", "json")
    assert_one_line_error(proc, str(bad))


def test_cli_bad_input_with_worker_processes_exits_2(tmp_path):
    """With -j 2 an error raised in a worker process still becomes one line and exit 2."""
    bad = _random_bytes(tmp_path)
    proc = run_cli("inspect", "-j", "2", SAMPLES / "resnet_small.onnx", bad)
    assert_one_line_error(proc, str(bad))


def _corrupt(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    for t in model.graph.initializer:
        if t.name == name:
            t.raw_data = t.raw_data[:5]
    return model


# inspect reads BN statistics always, and a Conv weight when the fold could overflow (float16).
@pytest.mark.parametrize("tensor_name,dtype", [("bn.var", np.float32), ("W", np.float16)])
def test_tensor_bytes_not_matching_shape_is_bad_input(tmp_path, tensor_name, dtype):
    """A tensor whose raw bytes do not fit its shape: ModelLoadError when read, naming file and tensor."""
    model = conv_bn_model(np.random.default_rng(0), dtype=dtype)
    path = save(_corrupt(model, tensor_name), tmp_path / "bad.onnx")
    with pytest.raises(ModelLoadError) as info:
        inspect_model(path)
    assert str(path) in str(info.value) and repr(tensor_name) in str(info.value)
    assert_one_line_error(run_cli("inspect", path), str(path), tensor_name)


def test_external_data_without_length_too_short_is_bad_input(tmp_path):
    """External data with no declared length and a file too short: ModelLoadError when read."""
    src = external_model(tmp_path)
    model = onnx.load(str(src), load_external_data=False)
    for t in model.graph.initializer:
        kept = [(e.key, e.value) for e in t.external_data if e.key != "length"]
        del t.external_data[:]
        for key, value in kept:
            t.external_data.add(key=key, value=value)
    onnx.save(model, str(tmp_path / "nolen.onnx"))
    data = (tmp_path / "m.data").read_bytes()
    (tmp_path / "m.data").write_bytes(data[: len(data) - 8])
    with pytest.raises(ModelLoadError):
        inspect_model(tmp_path / "nolen.onnx")
    assert_one_line_error(run_cli("inspect", tmp_path / "nolen.onnx"), "nolen.onnx")


# -- external data -----------------------------------------------------------------------------

def test_external_data_model_loads_lazily(tmp_path):
    """A model with every tensor in a relative external file loads without reading the data."""
    loaded = load_model(external_model(tmp_path))
    assert loaded.has_external_data
    assert loaded.store.bytes_read == 0
    assert all(t.data_location == TensorProto.EXTERNAL for t in loaded.proto.graph.initializer)


def test_inspect_reads_statistics_from_external_data(tmp_path):
    """inspect's stats of an external-data model equal the values of the in-memory model."""
    path = external_model(tmp_path, seed=3)
    ref = {t.name: onnx.numpy_helper.to_array(t) for t in conv_bn_model(np.random.default_rng(3)).graph.initializer}
    bn = inspect_model(path).batchnorms[0]
    for role in ("scale", "bias", "mean", "var"):
        values = ref[f"bn.{role}"].astype(np.float64)
        assert bn.stats[role].min == values.min()
        assert bn.stats[role].max == values.max()
        assert bn.stats[role].mean == pytest.approx(values.mean(), rel=1e-12)
    assert bn.fold.foldable and bn.fold.target == ("Conv", "conv")


def test_external_data_in_subfolder_loads(tmp_path):
    """A location in a subfolder of the model's folder is accepted."""
    src = external_model(tmp_path / "src")
    (tmp_path / "src" / "weights").mkdir()
    shutil.move(tmp_path / "src" / "m.data", tmp_path / "src" / "weights" / "w.bin")
    path = relocate_external(src, tmp_path / "src" / "m2.onnx", "weights/w.bin")
    assert inspect_model(path).summary["foldable"] == 1


def test_cli_inspects_external_data_model(tmp_path):
    """`bnfold inspect` on an external-data model exits 0 with no error output."""
    proc = run_cli("inspect", external_model(tmp_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr


# -- IR versions and opsets --------------------------------------------------------------------

def ir3_model(opset: int, spatial: int | None = 1) -> onnx.ModelProto:
    """IR 3 style: every initializer is also declared as a graph input."""
    attrs = {} if spatial is None else {"spatial": spatial}
    model = conv_bn_model(np.random.default_rng(7), opset=opset, ir=3, bn_attrs=attrs)
    for t in model.graph.initializer:
        model.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return model


@pytest.mark.parametrize("opset", [7, 8])
def test_ir3_model_with_initializers_as_inputs_is_foldable(tmp_path, opset):
    """IR 3, opset 7/8 with spatial=1: initializers listed as inputs are constants; BN folds."""
    model = ir3_model(opset)
    onnx.checker.check_model(model)
    session(model)  # onnxruntime accepts it too
    report = inspect_model(save(model, tmp_path / "ir3.onnx"))
    assert (report.ir_version, report.opset) == (3, opset)
    (bn,) = report.batchnorms
    assert bn.spatial == 1
    assert set(bn.sources.values()) == {"initializer"}
    assert bn.fold.foldable and bn.fold.target == ("Conv", "conv")
    assert [f.code for f in bn.findings] == []


def test_ir3_spatial_zero_is_not_foldable(tmp_path):
    """Opset 7 with spatial=0 is reported but refused with reason spatial-mode."""
    (bn,) = inspect_model(save(ir3_model(7, spatial=0), tmp_path / "sp0.onnx")).batchnorms
    assert bn.spatial == 0
    assert not bn.fold.foldable and bn.fold.reason == "spatial-mode"


def test_ir4_initializers_as_inputs_are_overridable(tmp_path):
    """From IR 4 on, an initializer that is also a graph input is overridable, not folded."""
    model = ir3_model(8)
    model.ir_version = 4
    (bn,) = inspect_model(save(model, tmp_path / "ir4.onnx")).batchnorms
    assert not bn.fold.foldable and bn.fold.reason == "stats-overridable"
    assert "stats-overridable" in [f.code for f in bn.findings]


@pytest.mark.parametrize("opset,ir", [(7, 3), (9, 4), (14, 7), (15, 8), (17, 8), (21, 10),
                                      (onnx.defs.onnx_opset_version(), onnx.IR_VERSION)])
def test_opset_versions_load_and_fold(tmp_path, opset, ir):
    """A plain Conv+BN loads, is reported with its opset, and folds at opset 7 to current."""
    model = conv_bn_model(np.random.default_rng(opset), opset=opset, ir=ir)
    report = inspect_model(save(model, tmp_path / f"op{opset}.onnx"))
    assert report.opset == opset and report.ir_version == ir
    assert report.summary == {"batchnorms": 1, "foldable": 1, "errors": 0, "warnings": 0, "infos": 0}


def test_opset9_model_has_no_spatial(tmp_path):
    """Opset 9 removed `spatial`: the report says None."""
    model = conv_bn_model(np.random.default_rng(9), opset=9, ir=4)
    (bn,) = inspect_model(save(model, tmp_path / "op9.onnx")).batchnorms
    assert bn.spatial is None


# -- subgraphs and functions -------------------------------------------------------------------

C = 4


def if_model(rng, *, if_name: str = "branch") -> onnx.ModelProto:
    """y = If(cond) then BN(Conv(x, W)) else Conv(x, W); the BN reads outer-scope statistics."""
    w = tensor("W", rng.normal(0, 0.5, (C, 3, 3, 3)))
    then = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["t_conv"], name="t_conv", pads=[1, 1, 1, 1]),
         bn_node("t_conv", "t_y", prefix="bn")],
        "then", [], [vinfo("t_y", [1, C, 8, 8])])
    other = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["e_y"], name="e_conv", pads=[1, 1, 1, 1])],
        "else", [], [vinfo("e_y", [1, C, 8, 8])])
    node = helper.make_node("If", ["cond"], ["y"], name=if_name, then_branch=then, else_branch=other)
    return make_model([node], [vinfo("x", [1, 3, 8, 8]), vinfo("cond", [], TensorProto.BOOL)],
                      [vinfo("y", [1, C, 8, 8])], [w] + bn_params(rng, C))


def loop_model(rng) -> onnx.ModelProto:
    """v = Loop(trip) { Relu(BN(Conv(v, Wl))) }: the BN lives in the loop body."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
         helper.make_node("Conv", ["v_in", "Wl"], ["l_conv"], name="l_conv"),
         bn_node("l_conv", "l_bn", prefix="lbn"),
         helper.make_node("Relu", ["l_bn"], ["v_out"], name="l_relu")],
        "body",
        [vinfo("i", [], TensorProto.INT64), vinfo("cond_in", [], TensorProto.BOOL),
         vinfo("v_in", [1, C, 8, 8])],
        [vinfo("cond_out", [], TensorProto.BOOL), vinfo("v_out", [1, C, 8, 8])])
    node = helper.make_node("Loop", ["trip", "", "x"], ["y"], name="loop", body=body)
    return make_model([node], [vinfo("x", [1, C, 8, 8]), vinfo("trip", [], TensorProto.INT64)],
                      [vinfo("y", [1, C, 8, 8])],
                      [tensor("Wl", rng.normal(0, 0.3, (C, C, 1, 1)))] + bn_params(rng, C, prefix="lbn"))


def scan_model(rng) -> onnx.ModelProto:
    """Scan over a sequence of images, BN(Conv(slice)) per step."""
    body = helper.make_graph(
        [helper.make_node("Conv", ["s_in", "Ws"], ["s_conv"], name="s_conv"),
         bn_node("s_conv", "s_out", prefix="sbn"),
         helper.make_node("Identity", ["state_in"], ["state_out"], name="carry")],
        "body", [vinfo("state_in", [1]), vinfo("s_in", [1, C, 4, 4])],
        [vinfo("state_out", [1]), vinfo("s_out", [1, C, 4, 4])])
    node = helper.make_node("Scan", ["state", "xs"], ["state_final", "ys"], name="scan", body=body,
                            num_scan_inputs=1)
    return make_model([node], [vinfo("state", [1]), vinfo("xs", [3, 1, C, 4, 4])],
                      [vinfo("state_final", [1]), vinfo("ys", [3, 1, C, 4, 4])],
                      [tensor("Ws", rng.normal(0, 0.3, (C, C, 1, 1)))] + bn_params(rng, C, prefix="sbn"))


def function_model(rng) -> onnx.ModelProto:
    """Main graph calls local.ConvBn; the function holds Conv+BN with Constant-node parameters."""
    params = bn_params(rng, C, prefix="fbn")
    nodes = [helper.make_node("Constant", [], ["fW"], value=tensor("fW", rng.normal(0, 0.5, (C, 3, 3, 3))))]
    nodes += [helper.make_node("Constant", [], [t.name], value=t) for t in params]
    nodes += [helper.make_node("Conv", ["fx", "fW"], ["fconv"], name="fconv", pads=[1, 1, 1, 1]),
              bn_node("fconv", "fy", prefix="fbn")]
    fn = helper.make_function("local", "ConvBn", ["fx"], ["fy"], nodes, [helper.make_opsetid("", 17)])
    main = [helper.make_node("ConvBn", ["x"], ["h"], domain="local", name="block"),
            helper.make_node("Relu", ["h"], ["y"], name="relu")]
    return make_model(main, [vinfo("x", [1, 3, 8, 8])], [vinfo("y", [1, C, 8, 8])], functions=[fn],
                      extra_opsets=[("local", 1)])


def test_if_subgraph_batchnorm_is_found(tmp_path):
    """A BN in an If then-branch is reported under main/<if>.then_branch and folds there."""
    model = if_model(np.random.default_rng(0))
    session(model)
    (bn,) = inspect_model(save(model, tmp_path / "if.onnx")).batchnorms
    assert bn.graph == "main/branch.then_branch"
    assert bn.channels == C
    assert set(bn.sources.values()) == {"outer-scope initializer"}
    assert bn.producer == ("Conv", "t_conv")
    assert bn.fold.foldable and bn.fold.target == ("Conv", "t_conv")


def test_loop_body_batchnorm_is_found(tmp_path):
    """A BN in a Loop body is reported under main/loop.body with its producer and consumer."""
    model = loop_model(np.random.default_rng(1))
    out = session(model).run(None, {"x": np.ones((1, C, 8, 8), np.float32), "trip": np.array(2, np.int64)})
    assert out[0].shape == (1, C, 8, 8)
    (bn,) = inspect_model(save(model, tmp_path / "loop.onnx")).batchnorms
    assert bn.graph == "main/loop.body"
    assert bn.producer == ("Conv", "l_conv") and bn.consumers == ("Relu",)
    assert bn.fold.foldable and bn.fold.target == ("Conv", "l_conv")


def test_scan_body_batchnorm_is_found(tmp_path):
    """A BN in a Scan body is reported under main/scan.body."""
    model = scan_model(np.random.default_rng(2))
    session(model)
    (bn,) = inspect_model(save(model, tmp_path / "scan.onnx")).batchnorms
    assert bn.graph == "main/scan.body"
    assert bn.fold.foldable


def test_function_batchnorm_with_constant_node_params(tmp_path):
    """A BN in a model-local function is reported as function:<domain>.<name>, params constant-node."""
    model = function_model(np.random.default_rng(3))
    onnx.checker.check_model(model)
    sess = session(model)
    assert sess.run(None, {"x": np.ones((1, 3, 8, 8), np.float32)})[0].shape == (1, C, 8, 8)
    (bn,) = inspect_model(save(model, tmp_path / "fn.onnx")).batchnorms
    assert bn.graph == "function:local.ConvBn"
    assert set(bn.sources.values()) == {"constant-node"}
    assert bn.channels == C and bn.stats is not None
    assert bn.fold.foldable and bn.fold.target == ("Conv", "fconv")


def test_lazy_parse_reports_like_eager_parse(tmp_path):
    """Parsing lazily (large-file path) gives the same report for samples, subgraphs and functions."""
    from bnfold.inspection import inspect_loaded

    rng = np.random.default_rng(0)
    paths = sorted(SAMPLES.glob("*.onnx")) + [
        save(if_model(rng), tmp_path / "if.onnx"), save(loop_model(rng), tmp_path / "loop.onnx"),
        save(function_model(rng), tmp_path / "fn.onnx"), external_model(tmp_path / "ext")]
    for path in paths:
        eager = inspect_loaded(load_model(path)).to_dict()
        lazy = inspect_loaded(load_model(path, lazy_threshold=0)).to_dict()
        assert lazy == eager, path


def test_unnamed_subgraph_owner_gets_synthesized_path(tmp_path):
    """An unnamed If node contributes its synthesized name to the subgraph path."""
    model = if_model(np.random.default_rng(0), if_name="")
    (bn,) = inspect_model(save(model, tmp_path / "if.onnx")).batchnorms
    assert bn.graph == "main/If_0.then_branch"


def test_unnamed_nodes_get_stable_synthesized_names(tmp_path):
    """Unnamed nodes are called <OpType>_<index>, identically on two separate loads."""
    path = save(unnamed(conv_bn_model(np.random.default_rng(5))), tmp_path / "unnamed.onnx")
    first, second = inspect_model(path), inspect_model(path)
    assert first.to_dict() == second.to_dict()
    (bn,) = first.batchnorms
    assert bn.name == "BatchNormalization_1"
    assert bn.producer == ("Conv", "Conv_0")
    assert bn.fold.target == ("Conv", "Conv_0")
