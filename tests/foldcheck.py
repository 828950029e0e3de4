"""The fold oracle used by the fuse tests: fold in memory, check structure, compare in ORT."""

from __future__ import annotations

import numpy as np
import onnx

from bnfold.fuse import FoldedModel, fold_proto
from builders import count_ops, max_rel_error, run_both

# Error of a folded model relative to the original's output magnitude (ORT_DISABLE_ALL).
TOLERANCE = {np.float32: 2e-5, np.float16: 8e-3, np.float64: 1e-12}


def io_signature(model: onnx.ModelProto):
    def sig(values):
        return [(v.name, v.type.SerializeToString()) for v in values]

    inits = {t.name for t in model.graph.initializer}
    return sig([i for i in model.graph.input if i.name not in inits]), sig(model.graph.output)


def orphan_initializers(model: onnx.ModelProto) -> list[str]:
    from bnfold.graph import GraphIndex

    index = GraphIndex.of_proto(model)
    used = set()
    for scope in index.scopes:
        used.update(scope.consumers)
        used.update(scope.outputs)
    from bnfold.modelio import iter_graphs

    signature = {i.name for i in model.graph.input} if model.ir_version >= 4 else set()
    return [t.name for g in iter_graphs(model.graph) for t in g.initializer
            if t.name not in used and t.name not in signature]


def fold_and_check(model: onnx.ModelProto, *, expect_left: int = 0, dtype=np.float32,
                   run: bool = True, seed: int = 0, **kwargs) -> FoldedModel:
    """Fold ``model`` and assert everything the fuse issue promises about the result."""
    before = model.SerializeToString()
    result = fold_proto(model, **kwargs)
    assert model.SerializeToString() == before, "fold_proto mutated its input"
    folded = result.model
    onnx.checker.check_model(folded, full_check=True)
    assert io_signature(folded) == io_signature(model)
    assert folded.ir_version == model.ir_version
    assert list(folded.opset_import) == list(model.opset_import)
    assert count_ops(folded, "BatchNormalization") == expect_left, (
        [(d.site.name, d.reason, d.detail) for d in result.plan.left])
    assert orphan_initializers(folded) == []
    if run:
        err = max_rel_error(run_both(model, folded, seed))
        assert err <= TOLERANCE[dtype], f"folded model differs: relative error {err:.3g}"
    return result
