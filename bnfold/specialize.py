"""Per-call-site specialization of model-local functions, so BNs inside them can fold.

A model-local function that contains BatchNormalization but receives its weights or statistics
as parameters cannot be folded in place: each call site may pass different values. Where a call
site passes constants, :func:`specialize_calls` gives it a private copy of the function with those
parameters bound to Constant nodes at the top of the body; the ordinary planner then folds inside
the copy. :func:`plan_with_specialization` keeps the specialized model only when it folds more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

from .graph import ConstantResolver, GraphIndex, function_path
from .modelio import LoadedModel
from .planner import FoldPlan, PlanOptions, Planner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Specialization:
    """A copy of ``original`` (domain, name) made for one call site, with ``bound`` parameters
    turned into Constant nodes (the body's nodes are shifted by ``len(bound)``)."""

    original: tuple[str, str, str]  # domain, name, overload
    name: str
    bound: tuple[str, ...]  # the function's parameters made constant
    arguments: tuple[str, ...] = ()  # what the call site passed for them


def _key(function: onnx.FunctionProto) -> tuple[str, str, str]:
    """A local function's identity: domain, name and (IR >= 10) overload."""
    return function.domain, function.name, getattr(function, "overload", "")


def _has_batchnorm(function: onnx.FunctionProto) -> bool:
    return any(n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx") for n in function.node)


def specialize_calls(loaded: LoadedModel, options: PlanOptions) -> tuple[LoadedModel, list[Specialization]] | None:
    """A copy of the model in which every call site that passes constants to a BN-holding
    local function calls a private, specialized copy; None when no call site qualifies."""
    functions = {_key(f): f for f in loaded.proto.functions if _has_batchnorm(f)}
    if not functions:
        return None
    index = GraphIndex(loaded, infer_types=False)
    consts = ConstantResolver(index)
    plans = []  # (scope path, node index, function key, bound positions)
    for scope in index.scopes:
        if scope.is_function:
            continue
        for i, node in enumerate(scope.nodes):
            key = (node.domain, node.op_type, getattr(node, "overload", ""))
            if key not in functions:
                continue
            function = functions[key]
            bound = []
            for pos, arg in enumerate(node.input[: len(function.input)]):
                if not arg:
                    continue
                info = consts.info(scope, arg)
                if info.constant and not info.quantized and (options.fold_overridable or not info.overridable):
                    bound.append(pos)
            if bound:
                plans.append((scope, i, key, tuple(bound)))
    if not plans:
        return None

    copy = onnx.ModelProto()
    copy.CopyFrom(loaded.proto)
    copy_index = GraphIndex(LoadedModel(copy, loaded.path, loaded.store), infer_types=False)
    by_path = {s.path: s for s in copy_index.scopes}
    taken = {f.name for f in copy.functions}
    made: dict[tuple, Specialization] = {}
    specs: list[Specialization] = []
    for scope, i, key, bound in plans:
        function = functions[key]
        call = by_path[scope.path].nodes[i]
        args = tuple((pos, call.input[pos], id(index.lookup_scope(scope, call.input[pos]))) for pos in bound)
        cache_key = (key, args)
        if cache_key not in made:
            spec_name = _unique(f"{function.name}_bnfold", taken)
            params = [function.input[pos] for pos in bound]
            body = [helper.make_node("Constant", [], [param], value=_tensor_for(consts, scope, call.input[pos], param))
                    for pos, param in zip(bound, params)]
            spec = onnx.FunctionProto()
            spec.CopyFrom(function)
            spec.name = spec_name
            del spec.input[:]
            spec.input.extend(p for pos, p in enumerate(function.input) if pos not in bound)
            del spec.node[:]
            spec.node.extend(body + list(function.node))
            copy.functions.append(spec)
            made[cache_key] = Specialization(key, spec_name, tuple(params),
                                             tuple(call.input[pos] for pos in bound))
            specs.append(made[cache_key])
        new_inputs = [a for pos, a in enumerate(call.input) if pos not in bound]
        del call.input[:]
        call.input.extend(new_inputs)
        call.op_type = made[cache_key].name
    _drop_uncalled(copy, set(functions))
    return LoadedModel(copy, loaded.path, loaded.store), specs


def _tensor_for(consts: ConstantResolver, scope, arg: str, param: str) -> onnx.TensorProto:
    info = consts.info(scope, arg)
    if info.tensor is not None:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(info.tensor)  # external payloads stay external until written
    else:
        tensor = numpy_helper.from_array(consts.value(scope, arg))
    tensor.name = param
    return tensor


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}{i}"
    taken.add(name)
    return name


def _drop_uncalled(model: onnx.ModelProto, candidates: set[tuple[str, str]]) -> None:
    """Remove original functions that no node calls any more."""
    from .modelio import _node_lists

    called = {(n.domain, n.op_type, getattr(n, "overload", "")) for nodes in _node_lists(model) for n in nodes}
    keep = [f for f in model.functions if _key(f) not in candidates or _key(f) in called]
    if len(keep) != len(model.functions):
        del model.functions[:]
        model.functions.extend(keep)


ORIGIN_KEY = "bnfold.origin"  # metadata tag: which function BN an inlined BN came from


def inline_bn_functions(loaded: LoadedModel) -> LoadedModel | None:
    """A copy with every BN-holding local function inlined at its call sites (onnx's inliner),
    each inlined BN tagged with the function BN it came from; None without such functions."""
    import onnx.inliner

    keys = [_key(f) for f in loaded.proto.functions if _has_batchnorm(f)]
    if not keys:
        return None
    ids = sorted({(domain, name) for domain, name, _ in keys})  # the inliner's ids have no overload
    tagged = onnx.ModelProto()
    tagged.CopyFrom(loaded.proto)
    for f in tagged.functions:
        if (f.domain, f.name) in ids:
            for i, node in enumerate(f.node):
                if node.op_type == "BatchNormalization":
                    tag = node.metadata_props.add()
                    tag.key, tag.value = ORIGIN_KEY, f"{function_path(*_key(f))}#{i}"
    try:
        inlined = onnx.inliner.inline_selected_functions(tagged, ids)
    except Exception as exc:  # the inliner refuses some models; then we simply do not inline
        log.debug("inlining failed: %s", exc)
        return None
    return LoadedModel(inlined, loaded.path, loaded.store)


def _origin(node: onnx.NodeProto) -> str | None:
    return next((p.value for p in node.metadata_props if p.key == ORIGIN_KEY), None)


def strip_origin_tags(model: onnx.ModelProto) -> None:
    """Remove bnfold's inlining tags (in place) so they never reach an output file."""
    from .modelio import _node_lists

    for nodes in _node_lists(model):
        for node in nodes:
            keep = [p for p in node.metadata_props if p.key != ORIGIN_KEY]
            if len(keep) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(keep)


@dataclass(frozen=True)
class BestPlan:
    """The plan fuse applies. ``how`` is "as-is", "specialized" or "inlined"."""

    loaded: LoadedModel
    plan: FoldPlan
    how: str = "as-is"
    specializations: tuple[Specialization, ...] = ()
    notes: tuple[str, ...] = ()


def plan_best(loaded: LoadedModel, options: PlanOptions) -> BestPlan:
    """The plan for ``loaded``, or for a copy with BN-holding functions specialized per call site
    or inlined, whichever folds the most (ties keep the model as it is)."""
    plan = Planner(GraphIndex(loaded), options).plan()
    best = BestPlan(loaded, plan)
    if not any(d.site.scope.is_function and not d.foldable for d in plan.decisions):
        return best
    specialized = specialize_calls(loaded, options)
    if specialized is not None:
        spec_loaded, specs = specialized
        spec_plan = Planner(GraphIndex(spec_loaded), options).plan()
        if len(spec_plan.folds) > len(best.plan.folds):
            notes = tuple(f"function {s.original[1]!r} specialized for a call site as {s.name!r} "
                          f"(bound to constants: {', '.join(s.arguments)})" for s in specs)
            best = BestPlan(spec_loaded, spec_plan, "specialized", tuple(specs), notes)
    inlined = inline_bn_functions(loaded)
    if inlined is not None:
        inl_plan = Planner(GraphIndex(inlined), options).plan()
        if len(inl_plan.folds) > len(best.plan.folds):
            names = sorted({f.name for f in loaded.proto.functions if _has_batchnorm(f)})
            best = BestPlan(inlined, inl_plan, "inlined",
                            notes=(f"inlined function(s) {', '.join(names)} at their call sites so the "
                                   "BNs inside them fold",))
    if best.how != "as-is":
        log.info("%s", "; ".join(best.notes))
    return best


def function_bn_folds(best: BestPlan, original: FoldPlan) -> dict[tuple[str, int], tuple[list, str]]:
    """For each BN of a function in the original model that ``best`` folds everywhere it runs:
    (graph path, node index) -> (the decisions that fold its copies, a sentence saying how)."""
    copies: dict[tuple[str, int], list] = {}
    if best.how == "specialized":
        for spec in best.specializations:
            original_path = function_path(*spec.original)
            copy_path = function_path(spec.original[0], spec.name, spec.original[2])
            for d in best.plan.decisions:
                if d.site.graph == copy_path:
                    copies.setdefault((original_path, d.site.index - len(spec.bound)), []).append(d)
        how = "in a copy of the function specialized to the constants each call passes"
    elif best.how == "inlined":
        for d in best.plan.decisions:
            origin = _origin(d.site.node)
            if origin is not None:
                path, index = origin.rsplit("#", 1)
                copies.setdefault((path, int(index)), []).append(d)
        how = "once the function is inlined"
    else:
        return {}
    return {key: (ds, f"folds at each of its {len(ds)} call site(s), {how}")
            for key, ds in copies.items() if ds and all(d.foldable for d in ds)}
