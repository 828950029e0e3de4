"""``fuse``: plan, rewrite a copy, validate it, and only then write it.

:func:`fuse_model` is the library entry point the CLI wraps. The output is staged in a private
folder beside the destination; when validation fails nothing appears at the destination.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError
from .modelio import LoadedModel, TensorStore, load_model, stage_model
from .planner import FoldDecision, FoldPlan, PlanOptions
from .rewrite import FoldOverflowError, RewriteOptions, rewrite_copy
from .specialize import plan_best, strip_origin_tags

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ValidationSettings:
    """Options passed through to :func:`bnfold.validate.validate_models`."""

    provider: str = "auto"
    reference_provider: str | None = None
    shapes: dict[str, tuple[int, ...]] | None = None
    samples: int = 1
    inputs: str | None = None
    seed: int = 0
    atol: float | None = None
    rtol: float | None = None
    fold_atol: float | None = None
    fold_rtol: float | None = None


@dataclass(frozen=True)
class FoldRecord:
    batchnorm: str
    graph: str
    into_op: str
    into_name: str
    direction: str
    tensor: str  # the tensor whose value the fold preserves (for per-fold attribution)

    def to_dict(self) -> dict:
        return {"batchnorm": self.batchnorm, "graph": self.graph,
                "into": {"op": self.into_op, "name": self.into_name}, "direction": self.direction}


@dataclass(frozen=True)
class LeftRecord:
    batchnorm: str
    graph: str
    reason: str
    detail: str | None
    decomposed: bool = False

    def to_dict(self) -> dict:
        return {"batchnorm": self.batchnorm, "graph": self.graph, "reason": self.reason,
                "detail": self.detail, "decomposed": self.decomposed}


@dataclass(frozen=True)
class FuseResult:
    input: str
    output: str | None  # None when nothing was written (validation failed)
    folded: tuple[FoldRecord, ...]
    left: tuple[LeftRecord, ...]
    validation: object | None = None  # bnfold.validate.ValidationResult
    written: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.validation is None or bool(getattr(self.validation, "passed", False))

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "input": self.input,
            "output": self.output,
            "folded": [f.to_dict() for f in self.folded],
            "left": [x.to_dict() for x in self.left],
            "validation": None if self.validation is None else self.validation.to_dict(),
            "written": list(self.written),
            "notes": list(self.notes),
        }


def fold_probes_between(original: str | os.PathLike, candidate: str | os.PathLike) -> list:
    """Per-fold probes for two models on disk: every main-graph BN of ``original`` whose output
    name the candidate computes with something other than a BN (a backward fold kept the name)."""
    from .graph import node_labels
    from .validate import FoldProbe

    a = load_model(original).proto.graph
    b = load_model(candidate).proto.graph
    a_labels, b_labels = node_labels(a.node), node_labels(b.node)
    producers = {}
    for i, node in enumerate(b.node):
        for out in node.output:
            producers[out] = (node, i)
    probes = []
    for i, node in enumerate(a.node):
        if node.op_type != "BatchNormalization" or node.output[0] not in producers:
            continue
        made_by, j = producers[node.output[0]]
        if made_by.op_type != "BatchNormalization":
            probes.append(FoldProbe(batchnorm=a_labels[i], into=f"{made_by.op_type} {b_labels[j]}",
                                    tensor=node.output[0]))
    return probes


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.folded{path.suffix or '.onnx'}")


def _final_tensor(decisions: list[FoldDecision], d: FoldDecision) -> str:
    """The tensor that holds ``d``'s target's result once every fold into it is applied."""
    same = [x for x in decisions if x.target is d.target or (
        x.target is not None and x.target.scope is d.target.scope and x.target.index == d.target.index)]
    backward = [x for x in same if x.direction == "backward"]
    if backward:
        return backward[-1].site.y
    return d.target.node.output[0]


@dataclass(frozen=True)
class FoldedModel:
    """The result of :func:`fold_proto`: a new model and the plan that made it."""

    model: object  # onnx.ModelProto
    plan: FoldPlan
    decomposed: tuple[str, ...] = ()


def fold_proto(model, *, decompose: bool = False, fold_overridable: bool = False,
               base_dir: str | os.PathLike | None = None) -> FoldedModel:
    """Fold the BNs of an in-memory ``onnx.ModelProto``; returns a new model (input untouched).

    External tensors, if any, are read relative to ``base_dir``. No validation runs: use
    :func:`fuse_model` for the checked, file-to-file path.
    """
    loaded = LoadedModel(proto=model, path=Path(base_dir or ".") / "model.onnx",
                         store=TensorStore(Path(base_dir) if base_dir else None))
    best, rewritten, folded = _fold(loaded, PlanOptions(fold_overridable=fold_overridable), decompose,
                                    lambda rewritten: rewritten.materialize())
    return FoldedModel(folded, best.plan, rewritten.decomposed)


def _fold(loaded: LoadedModel, options: PlanOptions, decompose: bool, emit):
    """Plan (trying function specialization and inlining), rewrite, and ``emit`` the result.

    The planner proves float32/float64 folds fit by a bound; should a folded weight still
    overflow while it is computed, plan again reading every weight so that fold is refused.
    Returns (the plan used, the rewrite, what ``emit`` returned)."""
    for exact in (False, True):
        best = plan_best(loaded, replace(options, exact_overflow=exact))
        strip_origin_tags(best.loaded.proto)
        rewritten = rewrite_copy(best.loaded, best.plan, RewriteOptions(decompose=decompose))
        try:
            return best, rewritten, emit(rewritten)
        except FoldOverflowError as exc:
            if exact:
                raise
            log.info("%s; planning again with exact overflow checks", exc)
    raise AssertionError("unreachable")


def _stage(rewritten, out: Path, external: bool, source_dir: Path):
    """Write the rewritten model beside ``out``; an input with external data gives an output
    with its own data file, and anything above 2 GiB gets one automatically."""
    return stage_model(rewritten.model, out, external_data=True if external else None,
                       source_dir=source_dir, deferred=rewritten.deferred)


def fuse_model(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike | None = None,
    *,
    in_place: bool = False,
    validate: bool = True,
    validation: ValidationSettings | None = None,
    decompose: bool = False,
    fold_overridable: bool = False,
    external_data: bool = False,
) -> FuseResult:
    """Fold every exactly-foldable BatchNormalization of the model at ``input_path``.

    Writes the result to ``output_path`` (default ``<stem>.folded.onnx`` beside the input) only
    after it validates (unless ``validate`` is False). Never overwrites the input unless
    ``in_place``. Raises :class:`~bnfold.errors.InputError` on bad input.
    """
    src = Path(input_path)
    out = Path(output_path) if output_path is not None else (src if in_place else default_output(src))
    if out.exists() and out.resolve() == src.resolve() and not in_place:
        raise InputError(f"{out}: refusing to overwrite the input; pass --in-place to do that")
    if out.is_dir():
        raise InputError(f"{out}: is a directory; give a file name for the output")
    loaded = load_model(src)
    external = external_data or loaded.has_external_data
    best, rewritten, staged = _fold(loaded, PlanOptions(fold_overridable=fold_overridable), decompose,
                                    lambda rewritten: _stage(rewritten, out, external, loaded.base_dir))
    plan = best.plan
    decomposed = rewritten.decomposed
    del rewritten
    decisions = list(plan.decisions)
    folded = tuple(
        FoldRecord(d.site.name, d.site.graph, d.target.op, d.target.name, d.direction,
                   _final_tensor(decisions, d))
        for d in plan.folds
    )
    left = tuple(LeftRecord(d.site.name, d.site.graph, d.reason, d.detail,
                            d.site.name in decomposed) for d in plan.left)
    notes: list[str] = list(best.notes)
    if len(staged.files) > 1 and not (external_data or loaded.has_external_data):
        notes.append(f"the output passes protobuf's 2 GiB limit: tensors written to {staged.files[1]}")
    with staged:
        result_validation = None
        if validate:
            from .validate import FoldProbe

            settings = validation or ValidationSettings()
            probes = [FoldProbe(batchnorm=f.batchnorm, into=f"{f.into_op} {f.into_name}", tensor=f.tensor)
                      for f in folded if f.graph == "main"]
            try:
                result_validation = _validate(src, staged.model_path, probes, settings)
            except InputError as exc:
                raise InputError(f"{exc} (validation runs both models in onnxruntime; "
                                 "--no-validate writes the folded model without it)") from exc
            if not result_validation.passed:
                log.warning("validation failed; nothing written at %s", out)
                return FuseResult(str(src), None, folded, left, result_validation, (), tuple(notes))
        written = staged.commit()
    return FuseResult(str(src), str(out), folded, left, result_validation,
                      tuple(str(p) for p in written), tuple(notes))


def _validate(src: Path, candidate: Path, probes, settings: ValidationSettings):
    from .validate import validate_models

    return validate_models(
        src, candidate, folds=probes, provider=settings.provider,
        reference_provider=settings.reference_provider, shapes=settings.shapes,
        samples=settings.samples, inputs=settings.inputs, seed=settings.seed,
        atol=settings.atol, rtol=settings.rtol, fold_atol=settings.fold_atol,
        fold_rtol=settings.fold_rtol,
    )
