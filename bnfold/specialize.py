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

from .graph import ConstantResolver, GraphIndex
from .modelio import LoadedModel
from .planner import FoldPlan, PlanOptions, Planner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Specialization:
    """A copy of ``original`` (domain, name) made for one call site, with ``bound`` parameters
    turned into Constant nodes (the body's nodes are shifted by ``len(bound)``)."""

    original: tuple[str, str]
    name: str
    bound: tuple[str, ...]


def _has_batchnorm(function: onnx.FunctionProto) -> bool:
    return any(n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx") for n in function.node)


def specialize_calls(loaded: LoadedModel, options: PlanOptions) -> tuple[LoadedModel, list[Specialization]] | None:
    """A copy of the model in which every call site that passes constants to a BN-holding
    local function calls a private, specialized copy; None when no call site qualifies."""
    functions = {(f.domain, f.name): f for f in loaded.proto.functions if _has_batchnorm(f)}
    if not functions:
        return None
    index = GraphIndex(loaded, infer_types=False)
    consts = ConstantResolver(index)
    plans = []  # (scope path, node index, function key, bound positions)
    for scope in index.scopes:
        if scope.is_function:
            continue
        for i, node in enumerate(scope.nodes):
            key = (node.domain, node.op_type)
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
            made[cache_key] = Specialization(key, spec_name, tuple(params))
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

    called = {(n.domain, n.op_type) for nodes in _node_lists(model) for n in nodes}
    keep = [f for f in model.functions if (f.domain, f.name) not in candidates or (f.domain, f.name) in called]
    if len(keep) != len(model.functions):
        del model.functions[:]
        model.functions.extend(keep)


def plan_with_specialization(loaded: LoadedModel, options: PlanOptions) -> tuple[LoadedModel, FoldPlan, list[Specialization]]:
    """The plan for ``loaded``, or for its call-site-specialized copy when that folds more."""
    plan = Planner(GraphIndex(loaded), options).plan()
    if not any(d.site.scope.is_function and not d.foldable for d in plan.decisions):
        return loaded, plan, []
    specialized = specialize_calls(loaded, options)
    if specialized is None:
        return loaded, plan, []
    spec_loaded, specs = specialized
    spec_plan = Planner(GraphIndex(spec_loaded), options).plan()
    if len(spec_plan.folds) > len(plan.folds):
        log.info("specialized %d function call site(s) to fold BNs inside them", len(specs))
        return spec_loaded, spec_plan, specs
    return loaded, plan, []
