"""The large-model path, exercised on small models with lowered thresholds: lazy parsing,
external data in and out, the 2 GiB switch, reading only what is needed, and outputs identical
to the in-memory path. Also: what fuse leaves on disk when validation fails."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import bnfold.modelio as modelio
from bnfold.errors import InputError
from bnfold.fuse import fold_proto, fuse_model
from bnfold.graph import GraphIndex
from bnfold.inspection import inspect_loaded
from bnfold.modelio import load_model, stage_model
from bnfold.planner import Planner
from bnfold.rewrite import rewrite_copy
from builders import conv_bn_model, late_overflow_conv_bn_model, max_rel_error, run_both, save

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def _arrays(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _external_copy(src: Path, folder: Path) -> Path:
    out = folder / src.name
    onnx.save(onnx.load(str(src)), str(out), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    return out


def test_lazy_parse_matches_full_parse():
    """Parsing with payloads left in the file gives the same graph and the same tensor values."""
    path = SAMPLES / "resnet_small.onnx"
    full, lazy = load_model(path), load_model(path, lazy_threshold=0)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in lazy.proto.graph.initializer)
    assert not lazy.has_external_data  # references into the model file itself do not count
    for a, b in zip(full.proto.graph.initializer, lazy.proto.graph.initializer):
        assert a.name == b.name
        np.testing.assert_array_equal(full.store.array(a), lazy.store.array(b))
    assert [n.SerializeToString() for n in full.proto.graph.node] == [n.SerializeToString() for n in lazy.proto.graph.node]


@pytest.mark.parametrize("name", ["resnet_small.onnx", "mlp_bn1d.onnx", "convtranspose_decoder.onnx"])
def test_streamed_output_identical_to_in_memory(tmp_path, monkeypatch, name):
    """Lazily parsed input, streamed output: the same tensors as the in-memory fold."""
    monkeypatch.setattr(modelio, "LAZY_PARSE_MIN_BYTES", 0)
    src = SAMPLES / name
    result = fuse_model(src, tmp_path / "out.onnx", validate=False)
    assert result.output
    in_memory = fold_proto(onnx.load(str(src))).model
    want = {t.name: numpy_helper.to_array(t) for t in in_memory.graph.initializer}
    got = _arrays(tmp_path / "out.onnx")
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    assert [n.SerializeToString() for n in onnx.load(str(tmp_path / "out.onnx")).graph.node] == \
        [n.SerializeToString() for n in in_memory.graph.node]


def test_external_data_in_gives_own_external_data_out(tmp_path):
    """External data in, external data out, in a file of the output's own; the input's is untouched."""
    src = _external_copy(SAMPLES / "resnet_small.onnx", tmp_path)
    before = (tmp_path / "weights.bin").read_bytes()
    result = fuse_model(src, tmp_path / "folded.onnx", validate=True)
    assert result.ok and (tmp_path / "folded.onnx.data").exists()
    assert (tmp_path / "weights.bin").read_bytes() == before
    onnx.checker.check_model(str(tmp_path / "folded.onnx"), full_check=True)
    locations = {e.value for t in onnx.load(str(tmp_path / "folded.onnx"), load_external_data=False).graph.initializer
                 for e in t.external_data if e.key == "location"}
    assert locations == {"folded.onnx.data"}
    assert max_rel_error(run_both(SAMPLES / "resnet_small.onnx", tmp_path / "folded.onnx")) < 2e-5


def test_output_over_the_protobuf_limit_switches_to_external_data(tmp_path, monkeypatch):
    """An output that would pass the (lowered) 2 GiB limit is written with external data, with a note."""
    monkeypatch.setattr(modelio, "PROTOBUF_LIMIT", 20_000)
    result = fuse_model(SAMPLES / "resnet_small.onnx", tmp_path / "big.onnx", validate=True)
    assert result.ok
    assert (tmp_path / "big.onnx.data").exists()
    assert any("2 GiB" in note for note in result.notes)
    onnx.checker.check_model(str(tmp_path / "big.onnx"), full_check=True)


def test_forced_external_data(tmp_path):
    """--external-data writes <out>.data even for a small model."""
    fuse_model(SAMPLES / "mlp_bn1d.onnx", tmp_path / "m.onnx", validate=False, external_data=True)
    assert (tmp_path / "m.onnx.data").stat().st_size > 0
    assert max_rel_error(run_both(SAMPLES / "mlp_bn1d.onnx", tmp_path / "m.onnx")) < 2e-5


def test_inspect_reads_only_statistics():
    """inspect on a float32 model reads the BN parameters and no weight."""
    loaded = load_model(SAMPLES / "resnet_small.onnx", lazy_threshold=0)
    inspect_loaded(loaded)
    bn_params = {i for n in loaded.proto.graph.node if n.op_type == "BatchNormalization" for i in n.input[1:]}
    assert set(loaded.store.reads) <= bn_params


def test_fuse_reads_only_what_it_folds(tmp_path):
    """fuse reads BN parameters and the weights it folds; other tensors are copied as bytes."""
    loaded = load_model(SAMPLES / "mlp_bn1d.onnx", lazy_threshold=0)
    plan = Planner(GraphIndex(loaded)).plan()
    rewritten = rewrite_copy(loaded, plan)
    stage_model(rewritten.model, tmp_path / "o.onnx", source_dir=loaded.base_dir,
                deferred=rewritten.deferred).commit()
    needed = {i for n in loaded.proto.graph.node if n.op_type == "BatchNormalization" for i in n.input[1:]}
    needed |= {d.target.node.input[1] for d in plan.folds}
    needed |= {i for d in plan.folds for i in d.target.node.input[2:]}
    needed |= {i for d in plan.folds if d.bias_add is not None for i in d.site.scope.nodes[d.bias_add].input}
    assert set(loaded.store.reads) <= needed
    untouched = {t.name for t in loaded.proto.graph.initializer} - needed
    assert untouched and not (untouched & set(loaded.store.reads))


def test_late_overflow_replans_and_refuses(tmp_path, monkeypatch):
    """A float32 weight beyond the planner's bound overflows while written: fuse re-plans exactly."""
    import bnfold.planner as planner

    monkeypatch.setattr(planner, "WEIGHT_BOUND", 1.0)  # the bound shortcut now never reads W
    model = late_overflow_conv_bn_model(np.random.default_rng(0))
    src = save(model, tmp_path / "huge.onnx")
    result = fuse_model(src, tmp_path / "out.onnx", validate=False)
    assert [x.reason for x in result.left] == ["fold-overflow"]


def test_validation_failure_writes_nothing(tmp_path, monkeypatch):
    """A wrong fold (epsilon dropped): nothing at OUT, no staging left behind, the fold is named."""
    from bnfold import bnmath

    real = bnmath.bn_affine
    monkeypatch.setattr(bnmath, "bn_affine", lambda s, b, m, v, eps: real(s, b, m, v, 0.0))
    model = conv_bn_model(np.random.default_rng(3), bn_attrs={"epsilon": 0.1})
    src = save(model, tmp_path / "m.onnx")
    out = tmp_path / "out" / "m.folded.onnx"
    out.parent.mkdir()
    result = fuse_model(src, out)
    assert result.output is None and not result.ok
    assert list(out.parent.iterdir()) == []
    failing = [f.batchnorm for f in result.validation.folds if f.passed is False]
    assert failing == ["bn"]


def test_refuses_to_overwrite_input(tmp_path):
    """-o pointing at the input without --in-place is refused."""
    src = save(conv_bn_model(np.random.default_rng(0)), tmp_path / "m.onnx")
    with pytest.raises(InputError):
        fuse_model(src, src)


def test_in_place_overwrites(tmp_path):
    """--in-place replaces the input with the folded model."""
    src = save(conv_bn_model(np.random.default_rng(0)), tmp_path / "m.onnx")
    original = onnx.load(str(src))
    result = fuse_model(src, in_place=True)
    assert result.output == str(src)
    assert max_rel_error(run_both(original, src)) < 2e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_default_output_name(tmp_path):
    """-o defaults to <stem>.folded.onnx beside the input."""
    src = save(conv_bn_model(np.random.default_rng(0)), tmp_path / "net.onnx")
    assert fuse_model(src, validate=False).output == str(tmp_path / "net.folded.onnx")
