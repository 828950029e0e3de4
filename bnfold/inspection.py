"""``inspect``: one report per BatchNormalization, built from the graph index, the planner and
the audit checks. Reading a model here never loads weights it does not need: statistics are
small, and a target's weight is read only to prove a fold does not overflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx

from . import audit
from .audit import Finding
from .graph import ConstantResolver, GraphIndex
from .modelio import LoadedModel, load_model
from .planner import BatchNormSite, FoldDecision, PlanOptions, Planner

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TensorStats:
    min: float | None
    max: float | None
    mean: float | None
    nonfinite: int

    @classmethod
    def of(cls, values: np.ndarray) -> TensorStats:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = v[np.isfinite(v)]
        if not finite.size:
            return cls(None, None, None, int(v.size))
        return cls(float(finite.min()), float(finite.max()), float(finite.mean()), int(v.size - finite.size))

    def to_dict(self) -> dict:
        return {"min": self.min, "max": self.max, "mean": self.mean, "nonfinite": self.nonfinite}


@dataclass(frozen=True)
class FoldSummary:
    """The planner's decision for one BN, as plain data."""

    foldable: bool
    direction: str | None
    target: tuple[str, str] | None  # (op, name)
    reason: str | None
    detail: str | None

    @classmethod
    def of(cls, d: FoldDecision) -> FoldSummary:
        target = None if d.target is None else (d.target.op, d.target.name)
        return cls(d.foldable, d.direction, target, d.reason, d.detail)

    def to_dict(self) -> dict:
        return {
            "foldable": self.foldable,
            "direction": self.direction,
            "target": None if self.target is None else {"op": self.target[0], "name": self.target[1]},
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class BatchNormReport:
    name: str
    graph: str
    input: str
    output: str
    channels: int | None
    epsilon: float
    momentum: float
    momentum_explicit: bool
    training_mode: bool
    spatial: int | None
    producer: tuple[str, str] | None  # (op, name)
    consumers: tuple[str, ...]
    sources: dict[str, str]
    dtypes: dict[str, str | None]
    stats: dict[str, TensorStats] | None
    fold: FoldSummary
    findings: tuple[Finding, ...]

    @property
    def foldable(self) -> bool:
        return self.fold.foldable

    @property
    def placement(self) -> str:
        before = self.producer[0] if self.producer else "input"
        after = ",".join(dict.fromkeys(self.consumers)) or "output"
        return f"{before}→BN→{after}"

    @property
    def momentum_window(self) -> float | None:
        return None if self.momentum >= 1 else 1.0 / (1.0 - self.momentum)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "graph": self.graph,
            "input": self.input,
            "output": self.output,
            "channels": self.channels,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
            "momentum_window": self.momentum_window,
            "training_mode": self.training_mode,
            "spatial": self.spatial,
            "producer": None if self.producer is None else {"op": self.producer[0], "name": self.producer[1]},
            "consumers": list(self.consumers),
            "placement": self.placement,
            "sources": dict(self.sources),
            "dtypes": dict(self.dtypes),
            "stats": None if self.stats is None else {k: v.to_dict() for k, v in self.stats.items()},
            "fold": self.fold.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class ModelReport:
    path: str
    ir_version: int
    opset: int | None
    batchnorms: tuple[BatchNormReport, ...]

    @property
    def findings(self) -> list[Finding]:
        return [f for bn in self.batchnorms for f in bn.findings]

    @property
    def summary(self) -> dict[str, int]:
        counts = audit.summarize(self.findings)
        return {
            "batchnorms": len(self.batchnorms),
            "foldable": sum(1 for bn in self.batchnorms if bn.foldable),
            "errors": counts[audit.ERROR],
            "warnings": counts[audit.WARNING],
            "infos": counts[audit.INFO],
        }

    def worst_severity(self) -> str | None:
        ranks = [audit.SEVERITY_RANK[f.severity] for f in self.findings]
        if not ranks:
            return None
        return {v: k for k, v in audit.SEVERITY_RANK.items()}[max(ranks)]

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "ir_version": self.ir_version,
            "opset": self.opset,
            "batchnorms": [bn.to_dict() for bn in self.batchnorms],
            "summary": self.summary,
        }


def _dtype_name(elem: int | None) -> str | None:
    if not elem:
        return None
    return onnx.TensorProto.DataType.Name(elem).lower()


def inspect_loaded(loaded: LoadedModel, options: PlanOptions | None = None) -> ModelReport:
    options = options or PlanOptions()
    index = GraphIndex(loaded)
    planner = Planner(index, options)
    plan = planner.plan()
    consts: ConstantResolver = planner.consts
    per_call_site = _per_call_site_folds(loaded, plan, options)
    reports = [_report(index, consts, d, per_call_site.get((d.site.graph, d.site.index))) for d in plan.decisions]
    return ModelReport(
        path=os.fspath(loaded.path),
        ir_version=index.ir_version,
        opset=index.opset,
        batchnorms=tuple(reports),
    )


def inspect_model(path: str | os.PathLike, *, fold_overridable: bool = False) -> ModelReport:
    """Audit every BatchNormalization in the model at ``path``."""
    return inspect_loaded(load_model(path), PlanOptions(fold_overridable=fold_overridable))


def _per_call_site_folds(loaded: LoadedModel, plan, options: PlanOptions) -> dict:
    """For BNs in functions that fold only once their call sites are specialized or the function
    is inlined (as fuse does): (graph, node index) -> a FoldSummary saying so."""
    from .specialize import function_bn_folds, plan_best

    if not any(d.site.scope.is_function and not d.foldable for d in plan.decisions):
        return {}
    out = {}
    for key, (decisions, sentence) in function_bn_folds(plan_best(loaded, options), plan).items():
        first = decisions[0]
        out[key] = FoldSummary(True, first.direction, (first.target.op, first.target.name), None, sentence)
    return out


def _report(index: GraphIndex, consts: ConstantResolver, decision: FoldDecision,
            per_call_site: FoldSummary | None = None) -> BatchNormReport:
    site: BatchNormSite = decision.site
    scope = site.scope
    p_idx = scope.producers.get(site.x)
    producer = None if p_idx is None else (scope.nodes[p_idx].op_type, scope.label(p_idx))
    consumers = tuple(scope.nodes[i].op_type for i in scope.consumers.get(site.y, []))
    infos = {role: consts.info(scope, name) for role, name in site.param_names.items()}
    sources = {role: ("outer-scope " + i.source if i.scope is not None and i.scope is not scope
                      and i.source == "initializer" else i.source) for role, i in infos.items()}
    dtypes = {"input": _dtype_name(index.elem_type(scope, site.x))}
    findings: list[Finding] = []
    stats = None
    channels = None
    if site.training_mode:
        findings.append(audit.finding("training-mode", "training_mode=1: this BN normalizes with "
                                      "the statistics of each batch at inference, so outputs "
                                      "depend on batch composition. Export in eval mode "
                                      "(model.eval()) to use the running statistics."))
    all_constant = all(i.constant for i in infos.values())
    values = {}
    if all_constant:
        try:
            values = {role: np.asarray(consts.value(scope, site.param_names[role])) for role in infos}
        except ValueError:
            all_constant = False
    if not all_constant:
        moving = [f"{role} ({i.detail or i.source})" for role, i in infos.items() if not i.constant]
        if per_call_site is None:  # else fuse folds it per call site: not worth an info
            findings.append(audit.finding("stats-not-constant", "cannot audit or fold: "
                                          + "; ".join(moving) + ". Bake the statistics into the "
                                          "model as initializers to audit them."))
    else:
        for role, arr in values.items():
            dtypes[role] = _dtype_name(_onnx_type(arr.dtype))
        flat = {role: arr.astype(np.float64).reshape(-1) for role, arr in values.items()}
        channels = max(a.size for a in flat.values())
        flat = {role: np.broadcast_to(a, (channels,)) if a.size == 1 else a for role, a in flat.items()}
        stats = {role: TensorStats.of(flat[role]) for role in ("scale", "bias", "mean", "var")}
        findings.extend(audit.check_statistics(flat["scale"], flat["bias"], flat["mean"], flat["var"],
                                               site.epsilon))
        if any(i.overridable for i in infos.values()):
            findings.append(audit.finding("stats-overridable", "the statistics are initializers "
                                          "that are also graph inputs (IR >= 4), so a caller may "
                                          "replace them at run time; bnfold folds them only with "
                                          "--fold-overridable."))
    explicit_momentum = any(a.name == "momentum" for a in site.node.attribute)
    findings.extend(audit.check_epsilon(site.epsilon))
    findings.extend(audit.check_momentum(site.momentum, explicit_momentum))
    if decision.reason == "fold-overflow":
        findings.append(audit.finding("fold-overflow", f"{decision.detail} Keep this BN unfolded, "
                                      "or fold in a wider dtype (float32).",
                                      decision.overflow_channels))
    order = {audit.ERROR: 0, audit.WARNING: 1, audit.INFO: 2}
    findings.sort(key=lambda f: order[f.severity])
    return BatchNormReport(
        name=site.name, graph=site.graph, input=site.x, output=site.y, channels=channels,
        epsilon=site.epsilon, momentum=site.momentum, momentum_explicit=explicit_momentum,
        training_mode=site.training_mode, spatial=site.spatial, producer=producer,
        consumers=consumers, sources=sources, dtypes=dtypes, stats=stats,
        fold=per_call_site or FoldSummary.of(decision),
        findings=tuple(findings),
    )


def _onnx_type(dtype: np.dtype) -> int | None:
    try:
        return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (KeyError, TypeError, ValueError):
        return None
