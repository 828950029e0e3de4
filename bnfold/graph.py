"""An index over a model's graphs: who produces and consumes each tensor, and what is constant.

A model is a tree of *scopes*: the main graph, every If/Loop/Scan body nested in it, and every
model-local function. Each :class:`Scope` knows its nodes, producers, consumers, initializers,
inputs and outputs. A subgraph may read tensors of enclosing scopes by name; the node holding the
subgraph counts as a consumer of those tensors in its own scope, so "this output has one consumer"
stays true to what runs.

:class:`ConstantResolver` answers "is this tensor a constant, and what is its value?": it follows
initializers, Constant nodes, Identity chains and small expressions of constants (Expand, Cast,
Reshape, Unsqueeze, ConstantOfShape, ...), evaluated once with onnx's reference evaluator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import onnx
from onnx import AttributeProto, helper, numpy_helper

from .modelio import LoadedModel, TensorStore, opset_version

log = logging.getLogger(__name__)

# Operators whose output is a pure function of their inputs and attributes: safe to evaluate
# once when every input is constant.
EVALUABLE_OPS = frozenset(
    {
        "Identity", "Cast", "CastLike", "Reshape", "Expand", "Unsqueeze", "Squeeze",
        "ConstantOfShape", "Flatten", "Transpose", "Concat", "Slice", "Gather", "Shape", "Size",
        "Mul", "Add", "Sub", "Div", "Neg", "Sqrt", "Reciprocal", "Pow", "Abs", "Tile", "Range",
    }
)
# Refuse to materialise computed constants larger than this many elements.
MAX_COMPUTED_ELEMENTS = 1 << 26


@dataclass(eq=False)
class Scope:
    """One graph or function body, with its tensor bookkeeping."""

    path: str
    nodes: list[onnx.NodeProto]
    graph: onnx.GraphProto | None = None
    function: onnx.FunctionProto | None = None
    parent: Scope | None = None
    owner: onnx.NodeProto | None = None  # the If/Loop/Scan node whose attribute holds this graph
    opset: int | None = None
    producers: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=dict)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    value_types: dict[str, onnx.TypeProto] = field(default_factory=dict)

    @property
    def is_function(self) -> bool:
        return self.function is not None

    @property
    def is_main(self) -> bool:
        return self.parent is None and self.function is None

    def producer(self, name: str) -> onnx.NodeProto | None:
        idx = self.producers.get(name)
        return None if idx is None else self.nodes[idx]

    def consumer_nodes(self, name: str) -> list[onnx.NodeProto]:
        return [self.nodes[i] for i in self.consumers.get(name, [])]

    def defines(self, name: str) -> bool:
        return name in self.producers or name in self.initializers or name in self.inputs

    @cached_property
    def labels(self) -> list[str]:
        return node_labels(self.nodes)

    def label(self, index: int) -> str:
        """The node's name, or a stable synthesized one that no real name in the scope shares."""
        return self.labels[index]

    @cached_property
    def input_set(self) -> frozenset[str]:
        return frozenset(self.inputs)

    @cached_property
    def output_set(self) -> frozenset[str]:
        return frozenset(self.outputs)


def function_path(domain: str, name: str, overload: str = "") -> str:
    """How a model-local function is named in reports: ``function:<domain>.<name>[:<overload>]``."""
    path = f"function:{domain}.{name}" if domain else f"function:{name}"
    return f"{path}:{overload}" if overload else path


def node_label(node: onnx.NodeProto, index: int) -> str:
    """The node's name, or a stable one made from its op type and position in its graph.

    Use :func:`node_labels` (or ``Scope.label``) where a synthesized name must not collide
    with a real one in the same graph."""
    return node.name or f"{node.op_type}_{index}"


def node_labels(nodes) -> list[str]:
    """Labels for a graph's nodes: real names, or ``<op>_<index>`` made unique against them."""
    taken = {n.name for n in nodes if n.name}
    labels = []
    for i, node in enumerate(nodes):
        label = node.name
        if not label:
            label = base = f"{node.op_type}_{i}"
            while label in taken:
                label = f"{label}'" if label != base else f"{base}_unnamed"
            taken.add(label)
        labels.append(label)
    return labels


class AttributeReference(Exception):
    """An attribute of a node inside a function refers to the function's own attribute
    (``ref_attr_name``): its value is known only at a call site."""


def get_attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            if attr.ref_attr_name:
                raise AttributeReference(f"{node.op_type} attribute {name!r} refers to the "
                                         f"function attribute {attr.ref_attr_name!r}")
            return helper.get_attribute_value(attr)
    return default


def subgraphs_of(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == AttributeProto.GRAPHS:
            for i, g in enumerate(attr.graphs):
                yield f"{attr.name}[{i}]", g


def free_names(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph reads without defining them: references to enclosing scopes."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for _, g in subgraphs_of(node):
            used |= free_names(g)
        defined.update(n for n in node.output if n)
    used.update(o.name for o in graph.output)
    return used - defined


def _collect_types(values, into: dict[str, onnx.TypeProto]) -> None:
    for vi in values:
        if vi.name and vi.type.WhichOneof("value") is not None:
            into.setdefault(vi.name, vi.type)


class GraphIndex:
    """Every scope of a model, built once; read-only."""

    def __init__(self, loaded: LoadedModel, *, infer_types: bool = True):
        self.loaded = loaded
        self.model = loaded.proto
        self.ir_version = int(self.model.ir_version)
        self.opset = opset_version(self.model.opset_import, "")
        self.scopes: list[Scope] = []
        self.main = self._add_graph_scope(self.model.graph, "main", None, None, self.opset)
        for function in self.model.functions:
            self._add_function_scope(function)
        if infer_types:
            self._infer_types()

    @classmethod
    def of_proto(cls, model: onnx.ModelProto) -> GraphIndex:
        """An index over an in-memory model (no file, tensors held in the proto)."""
        return cls(LoadedModel(proto=model, path=None, store=TensorStore(None)), infer_types=False)

    # -- construction -----------------------------------------------------------------------
    def _index_nodes(self, scope: Scope) -> None:
        for i, node in enumerate(scope.nodes):
            for name in node.output:
                if name:
                    scope.producers[name] = i
            reads = [n for n in node.input if n]
            for _, g in subgraphs_of(node):
                reads.extend(sorted(free_names(g)))
            for name in dict.fromkeys(reads):
                scope.consumers.setdefault(name, []).append(i)

    def _add_graph_scope(self, graph, path, parent, owner, opset) -> Scope:
        scope = Scope(path=path, nodes=list(graph.node), graph=graph, parent=parent, owner=owner,
                      opset=opset)
        scope.initializers = {t.name: t for t in graph.initializer}
        scope.inputs = [i.name for i in graph.input]
        scope.outputs = [o.name for o in graph.output]
        _collect_types(graph.input, scope.value_types)
        _collect_types(graph.output, scope.value_types)
        _collect_types(graph.value_info, scope.value_types)
        self._index_nodes(scope)
        self.scopes.append(scope)
        for i, node in enumerate(scope.nodes):
            for attr_name, g in subgraphs_of(node):
                sub_path = f"{path}/{scope.label(i)}.{attr_name}"
                self._add_graph_scope(g, sub_path, scope, node, opset)
        return scope

    def _add_function_scope(self, function: onnx.FunctionProto) -> None:
        opset = opset_version(function.opset_import, "") or self.opset
        path = function_path(function.domain, function.name, getattr(function, "overload", ""))
        scope = Scope(path=path, nodes=list(function.node), function=function, opset=opset)
        scope.inputs = list(function.input)
        scope.outputs = list(function.output)
        _collect_types(getattr(function, "value_info", []), scope.value_types)
        self._index_nodes(scope)
        self.scopes.append(scope)
        for i, node in enumerate(scope.nodes):
            for attr_name, g in subgraphs_of(node):
                self._add_graph_scope(g, f"{path}/{scope.label(i)}.{attr_name}", scope, node,
                                      opset)

    def _infer_types(self) -> None:
        """Fill in value types with onnx shape inference on a weightless copy of the model."""
        try:
            inferred = onnx.shape_inference.infer_shapes(
                light_copy(self.model), strict_mode=False, data_prop=False
            )
        except Exception as exc:  # inference fails on exotic models; types stay partial
            log.debug("shape inference failed: %s", exc)
            return
        for scope, graph in zip(self.scopes, _graphs_in_scope_order(inferred, self.scopes)):
            if graph is not None:
                _collect_types(graph.value_info, scope.value_types)
                _collect_types(graph.output, scope.value_types)

    # -- queries ----------------------------------------------------------------------------
    def iter_nodes(self, op_type: str | None = None) -> Iterator[tuple[Scope, int, onnx.NodeProto]]:
        for scope in self.scopes:
            for i, node in enumerate(scope.nodes):
                if op_type is None or (node.op_type == op_type and node.domain in ("", "ai.onnx")):
                    yield scope, i, node

    def lookup_scope(self, scope: Scope, name: str) -> Scope | None:
        """The scope that defines ``name`` as seen from ``scope`` (walking outwards)."""
        s: Scope | None = scope
        while s is not None:
            if s.defines(name):
                return s
            s = s.parent
        return None

    def value_type(self, scope: Scope, name: str) -> onnx.TypeProto | None:
        s: Scope | None = scope
        while s is not None:
            if name in s.value_types:
                return s.value_types[name]
            if name in s.initializers:
                t = s.initializers[name]
                return helper.make_tensor_type_proto(t.data_type, list(t.dims))
            s = s.parent
        return None

    def elem_type(self, scope: Scope, name: str) -> int | None:
        tp = self.value_type(scope, name)
        if tp is None or not tp.HasField("tensor_type"):
            return None
        return tp.tensor_type.elem_type or None

    def rank(self, scope: Scope, name: str) -> int | None:
        tp = self.value_type(scope, name)
        if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
            return None
        return len(tp.tensor_type.shape.dim)

    def all_names(self) -> set[str]:
        names: set[str] = set()
        for scope in self.scopes:
            names.update(scope.producers)
            names.update(scope.initializers)
            names.update(scope.inputs)
            names.update(scope.outputs)
            for node in scope.nodes:
                names.update(node.input)
        return names


def _is_repeated(fd) -> bool:
    is_repeated = getattr(fd, "is_repeated", None)  # protobuf >= 5 drops ``label``
    return bool(is_repeated) if is_repeated is not None else fd.label == fd.LABEL_REPEATED


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose main-graph initializers keep name, type and dims but no data.

    Enough for shape inference and structural edits without duplicating weight bytes.
    """
    light = onnx.ModelProto()
    for fd, value in model.ListFields():
        if fd.name != "graph":
            if _is_repeated(fd):
                getattr(light, fd.name).extend(value)
            elif fd.message_type is not None:
                getattr(light, fd.name).CopyFrom(value)
            else:
                setattr(light, fd.name, value)
    for fd, value in model.graph.ListFields():
        if fd.name == "initializer":
            continue
        if _is_repeated(fd):
            getattr(light.graph, fd.name).extend(value)
        else:
            setattr(light.graph, fd.name, value)
    for t in model.graph.initializer:
        header = light.graph.initializer.add()
        header.name, header.data_type = t.name, t.data_type
        header.dims.extend(t.dims)
        if t.ByteSize() <= 4096 and t.data_location != onnx.TensorProto.EXTERNAL:
            header.CopyFrom(t)  # small tensors (shapes for Reshape) help inference
        else:
            header.data_location = onnx.TensorProto.EXTERNAL
            entry = header.external_data.add()
            entry.key, entry.value = "location", "__bnfold_stripped__"
    return light


def _graphs_in_scope_order(model: onnx.ModelProto, scopes: list[Scope]) -> list:
    """Graphs of an inferred copy, in the order GraphIndex created the scopes."""
    out: list = []

    def walk(graph):
        out.append(graph)
        for node in graph.node:
            for _, g in subgraphs_of(node):
                walk(g)

    walk(model.graph)
    for function in model.functions:
        out.append(None)
        for node in function.node:
            for _, g in subgraphs_of(node):
                walk(g)
    return out if len(out) == len(scopes) else [None] * len(scopes)


# -- constants ---------------------------------------------------------------------------------

SOURCE_INITIALIZER = "initializer"
SOURCE_CONSTANT_NODE = "constant-node"
SOURCE_COMPUTED = "computed"
SOURCE_GRAPH_INPUT = "graph-input"
SOURCE_RUNTIME = "runtime"
SOURCE_FUNCTION_INPUT = "function-input"
SOURCE_MISSING = "missing"


@dataclass(frozen=True)
class ConstInfo:
    """Where a tensor's value comes from, and whether it can be baked in.

    ``constant``: the value is known without running the model. ``overridable``: it is an
    initializer that is also a graph input (IR >= 4), so a caller may replace it at run time.
    ``quantized``: its value passes through DequantizeLinear.
    """

    name: str
    source: str
    constant: bool
    overridable: bool = False
    quantized: bool = False
    tensor: onnx.TensorProto | None = None  # the backing TensorProto when read directly
    scope: Scope | None = None  # scope holding that TensorProto (initializer) or node
    shape: tuple[int, ...] | None = None
    elem_type: int | None = None
    detail: str = ""


class ConstantResolver:
    """Resolves tensors to constants; values are computed lazily and cached."""

    def __init__(self, index: GraphIndex):
        self.index = index
        self.store: TensorStore = index.loaded.store
        self._info: dict[tuple[int, str], ConstInfo] = {}
        self._values: dict[tuple[int, str], np.ndarray] = {}

    def info(self, scope: Scope, name: str) -> ConstInfo:
        key = (id(scope), name)
        if key not in self._info:
            self._info[key] = self._resolve(scope, name, depth=0)
        return self._info[key]

    def _resolve(self, scope: Scope, name: str, depth: int) -> ConstInfo:
        if depth > 64:
            return ConstInfo(name, SOURCE_RUNTIME, False, detail="constant chain too deep")
        producer_idx = scope.producers.get(name)
        if producer_idx is not None:
            node = scope.nodes[producer_idx]
            return self._resolve_node(scope, node, name, depth)
        if name in scope.initializers:
            t = scope.initializers[name]
            overridable = name in scope.input_set and self.index.ir_version >= 4 and scope.is_main
            return ConstInfo(name, SOURCE_INITIALIZER, True, overridable=overridable, tensor=t,
                             scope=scope, shape=tuple(int(d) for d in t.dims), elem_type=t.data_type)
        if name in scope.input_set:
            if scope.is_function:
                return ConstInfo(name, SOURCE_FUNCTION_INPUT, False,
                                 detail=f"{name!r} is a parameter of {scope.path}")
            return ConstInfo(name, SOURCE_GRAPH_INPUT, False, detail=f"{name!r} is a graph input")
        if scope.parent is not None:
            return self._resolve(scope.parent, name, depth + 1)
        return ConstInfo(name, SOURCE_MISSING, False, detail=f"{name!r} is not defined")

    def _resolve_node(self, scope: Scope, node: onnx.NodeProto, name: str, depth: int) -> ConstInfo:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return ConstInfo(name, SOURCE_RUNTIME, False,
                             detail=f"{name!r} is computed by {node.domain}.{op}")
        if op == "Constant":
            t = _constant_tensor(node)
            if t is None:
                return ConstInfo(name, SOURCE_CONSTANT_NODE, True, scope=scope, detail="Constant")
            return ConstInfo(name, SOURCE_CONSTANT_NODE, True, tensor=t, scope=scope,
                             shape=tuple(int(d) for d in t.dims), elem_type=t.data_type)
        if op == "DequantizeLinear":
            return ConstInfo(name, SOURCE_RUNTIME, False, quantized=True,
                             detail=f"{name!r} is dequantized at run time (DequantizeLinear)")
        if op == "CastLike" and len(node.input) == 2:
            # CastLike reads only the *type* of its second input (the PyTorch dynamo exporter
            # casts constant biases "like" the graph input): constant iff the first input is.
            part = self._resolve(scope, node.input[0], depth + 1)
            target = self.index.elem_type(scope, node.input[1])
            if part.constant and target is not None:
                return ConstInfo(name, SOURCE_COMPUTED, True, overridable=part.overridable,
                                 quantized=part.quantized, scope=scope, elem_type=target,
                                 detail="computed by CastLike")
            if part.constant:
                return ConstInfo(name, SOURCE_RUNTIME, False,
                                 detail=f"{name!r} is cast like {node.input[1]!r}, whose type is unknown")
            return ConstInfo(name, part.source, False, quantized=part.quantized, detail=part.detail)
        if op in EVALUABLE_OPS:
            parts = [self._resolve(scope, i, depth + 1) for i in node.input if i]
            if all(p.constant for p in parts):
                return ConstInfo(name, SOURCE_COMPUTED, True,
                                 overridable=any(p.overridable for p in parts),
                                 quantized=any(p.quantized for p in parts), scope=scope,
                                 detail=f"computed by {op}")
            blocker = next(p for p in parts if not p.constant)
            return ConstInfo(name, blocker.source if blocker.source != SOURCE_MISSING else SOURCE_RUNTIME,
                             False, quantized=blocker.quantized, detail=blocker.detail)
        return ConstInfo(name, SOURCE_RUNTIME, False, detail=f"{name!r} is computed by {op} at run time")

    def value(self, scope: Scope, name: str) -> np.ndarray:
        """The constant's value (read-only for memory-mapped data). Call only if constant."""
        key = (id(scope), name)
        if key in self._values:
            return self._values[key]
        info = self.info(scope, name)
        if not info.constant:
            raise ValueError(f"{name!r} is not a constant")
        if info.tensor is not None:
            arr = self.store.array(info.tensor)
        else:
            arr = self._evaluate(info.scope or scope, name)
        if arr.size <= 4096:
            self._values[key] = arr
        return arr

    def _evaluate(self, scope: Scope, name: str) -> np.ndarray:
        s = self.index.lookup_scope(scope, name)
        node = s.producer(name) if s is not None else None
        if node is None:
            raise ValueError(f"no producer for {name!r}")
        if node.op_type == "Constant":
            return _constant_value(node)
        if node.op_type == "CastLike":
            target = self.index.elem_type(s, node.input[1])
            return np.asarray(self.value(s, node.input[0])).astype(helper.tensor_dtype_to_np_dtype(target))
        inputs = {i: self.value(s, i) for i in node.input if i}
        if node.op_type == "Identity":
            return inputs[node.input[0]]
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(node, opsets={"": s.opset or self.index.opset or 13})
        feeds = {k: np.asarray(v) for k, v in inputs.items()}
        results = evaluator.run(None, feeds)
        out = dict(zip([o for o in node.output], results))[name]
        out = np.asarray(out)
        if out.size > MAX_COMPUTED_ELEMENTS:
            raise ValueError(f"computed constant {name!r} is too large to fold ({out.size} elements)")
        return out


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == AttributeProto.TENSOR:
            return attr.t
    return None


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    """Value of a Constant node in any of its attribute forms."""
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
        if attr.name == "sparse_value":
            return _densify(attr.sparse_tensor)
    raise ValueError(f"Constant node {node.name!r} has no value attribute")


def _densify(sparse: onnx.SparseTensorProto) -> np.ndarray:
    """A sparse Constant's dense value: indices are either linear (shape [NNZ]) or
    coordinates (shape [NNZ, rank]), per the ONNX spec."""
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    dense = np.zeros(tuple(sparse.dims), dtype=values.dtype)
    if indices.ndim == 2:
        dense[tuple(indices.T)] = values
    else:
        dense.reshape(-1)[indices] = values
    return dense
