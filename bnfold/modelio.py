"""Reading and writing ONNX model files safely.

Loading never reads external tensor data up front: the model proto is parsed with its external
references left in place, every reference is checked (it must stay inside the model's folder and
fit in its file), and tensors are read on demand through :class:`TensorStore`, memory-mapped where
the bytes live in an external file. Saving writes to a temporary file in the target folder and
renames it into place, so a failed run never leaves a half-written model.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, numpy_helper

from .errors import ModelLoadError

log = logging.getLogger(__name__)

PROTOBUF_LIMIT = 2**31 - 1
# Files at least this large are parsed lazily: initializer payloads stay in the file.
LAZY_PARSE_MIN_BYTES = 32 << 20
# Raw payloads at least this large are left in place when parsing lazily.
LAZY_PAYLOAD_MIN_BYTES = 4096
# Tensors at least this large are memory-mapped rather than copied when they live in a file.
_MMAP_MIN_BYTES = 1 << 16


@dataclass
class LoadedModel:
    """A parsed model, its location, and a store that reads its tensors lazily."""

    proto: onnx.ModelProto
    path: Path
    store: TensorStore = field(repr=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def has_external_data(self) -> bool:
        """True when tensors live in separate data files (not lazily in the model file itself)."""
        own = self.path.name if self.path is not None else None
        return any(_is_external(t) and external_ref(t).location != own for t in iter_all_tensors(self.proto))

    @property
    def default_opset(self) -> int | None:
        return opset_version(self.proto.opset_import, "")


def opset_version(opset_import, domain: str) -> int | None:
    for entry in opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(entry.version)
    return None


def _is_external(tensor: TensorProto) -> bool:
    return tensor.HasField("data_location") and tensor.data_location == TensorProto.EXTERNAL


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Yield ``graph`` and every subgraph nested in its nodes' attributes, depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_graphs(g)


def _node_lists(model: onnx.ModelProto) -> Iterator:
    for graph in iter_graphs(model.graph):
        yield graph.node
    for function in model.functions:
        yield function.node
        for node in function.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    for g in iter_graphs(attr.g):
                        yield g.node


def iter_all_tensors(model: onnx.ModelProto, *, main_initializers: bool = True) -> Iterator[TensorProto]:
    """Every TensorProto that may hold data: initializers and Constant/attribute tensors.

    ``main_initializers=False`` leaves out the main graph's initializers (the ones streamed)."""
    for depth, graph in enumerate(iter_graphs(model.graph)):
        if depth or main_initializers:
            yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for nodes in _node_lists(model):
        for node in nodes:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors
                elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices


@dataclass(frozen=True)
class ExternalRef:
    location: str
    offset: int
    length: int | None


def external_ref(tensor: TensorProto) -> ExternalRef:
    info = {entry.key: entry.value for entry in tensor.external_data}
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError as exc:
        raise ModelLoadError(
            f"tensor {tensor.name!r} has a malformed external-data offset or length"
        ) from exc
    return ExternalRef(info.get("location", ""), offset, length)


class TensorStore:
    """Reads tensor values on demand, memory-mapping external data.

    ``array(tensor)`` never mutates the proto. Arrays that come from a memory map are read-only;
    callers copy (or compute a new array) before changing values.
    """

    def __init__(self, base_dir: Path, model_path: Path | None = None):
        self.base_dir = base_dir
        self.model_path = model_path  # named in errors
        self.bytes_read = 0
        self.reads: list[str] = []  # names of the tensors read, in order (tests and benchmarks)

    def external_path(self, tensor: TensorProto) -> Path:
        return resolve_external_location(self.base_dir, external_ref(tensor).location, tensor.name)

    def array(self, tensor: TensorProto) -> np.ndarray:
        """The tensor's value; a :class:`ModelLoadError` when its stored bytes do not fit its
        type and shape (a corrupt model is bad input, not a crash)."""
        self.reads.append(tensor.name)
        try:
            return self._read(tensor)
        except (ValueError, TypeError, OSError) as exc:
            where = f"{self.model_path}: " if self.model_path is not None else ""
            dims = "x".join(str(d) for d in tensor.dims) or "scalar"
            raise ModelLoadError(
                f"{where}tensor {tensor.name!r} ({_type_name(tensor.data_type)}, shape {dims}) has "
                f"data that cannot be read: {exc}"
            ) from exc

    def _read(self, tensor: TensorProto) -> np.ndarray:
        if not _is_external(tensor):
            arr = numpy_helper.to_array(tensor)
            self.bytes_read += arr.nbytes
            return arr
        ref = external_ref(tensor)
        path = self.external_path(tensor)
        dtype = tensor_np_dtype(tensor.data_type)
        shape = tuple(int(d) for d in tensor.dims)
        count = int(np.prod(shape, dtype=np.int64))
        if dtype is None or dtype.itemsize * count != (ref.length if ref.length is not None else dtype.itemsize * count):
            # Odd encodings (strings, 4-bit types): let onnx decode a copy.
            copy = TensorProto()
            copy.CopyFrom(tensor)
            onnx.external_data_helper.load_external_data_for_tensor(copy, str(self.base_dir))
            arr = numpy_helper.to_array(copy)
            self.bytes_read += arr.nbytes
            return arr
        nbytes = dtype.itemsize * count
        self.bytes_read += nbytes
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        if nbytes >= _MMAP_MIN_BYTES:
            return np.memmap(path, dtype=dtype, mode="r", offset=ref.offset, shape=shape)
        with open(path, "rb") as handle:
            handle.seek(ref.offset)
            data = handle.read(nbytes)
        return np.frombuffer(data, dtype=dtype).reshape(shape)


def _type_name(data_type: int) -> str:
    try:
        return TensorProto.DataType.Name(data_type).lower()
    except ValueError:
        return f"type {data_type}"


def tensor_np_dtype(data_type: int) -> np.dtype | None:
    """The little-endian numpy dtype whose raw bytes match ONNX's raw_data encoding, if any."""
    if data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type))
    except (KeyError, ValueError, TypeError):
        return None
    if data_type in (TensorProto.INT4, TensorProto.UINT4, getattr(TensorProto, "FLOAT4E2M1", -1)):
        return None  # packed two per byte
    return dtype.newbyteorder("<") if dtype.byteorder not in ("|", "=", "<") else dtype


def resolve_external_location(base_dir: Path, location: str, tensor_name: str = "") -> Path:
    """The file an external-data location names, refusing anything outside ``base_dir``."""
    if not location:
        raise ModelLoadError(f"tensor {tensor_name!r} has external data with no location")
    if os.path.isabs(location) or location.startswith(("/", "\\")):
        raise ModelLoadError(
            f"tensor {tensor_name!r} points at external data by absolute path {location!r}; "
            "refusing to read files outside the model's folder"
        )
    base = base_dir.resolve()
    target = (base / location).resolve()
    if target != base and base not in target.parents:
        raise ModelLoadError(
            f"tensor {tensor_name!r} points at external data {location!r} outside the model's "
            "folder; refusing to read it"
        )
    return target


def _check_external_data(model: onnx.ModelProto, base_dir: Path) -> None:
    sizes: dict[Path, int] = {}
    for tensor in iter_all_tensors(model):
        if not _is_external(tensor):
            continue
        ref = external_ref(tensor)
        path = resolve_external_location(base_dir, ref.location, tensor.name)
        if path not in sizes:
            if not path.is_file():
                raise ModelLoadError(
                    f"external data file {ref.location!r} for tensor {tensor.name!r} is missing "
                    f"(looked in {base_dir})"
                )
            sizes[path] = path.stat().st_size
        end = ref.offset + (ref.length or 0)
        if ref.offset < 0 or end > sizes[path]:
            raise ModelLoadError(
                f"external data for tensor {tensor.name!r} runs past the end of {ref.location!r} "
                f"(needs bytes {ref.offset}..{end}, file has {sizes[path]})"
            )


def load_model(path: str | os.PathLike, *, load_weights: bool = False,
               lazy_threshold: int | None = None) -> LoadedModel:
    """Parse a model file, check it is usable, and keep external data lazy.

    Files of ``lazy_threshold`` bytes or more are parsed without their large initializer
    payloads, which become external-data references into the model file itself (read later
    through the store, memory-mapped). With ``load_weights`` external tensors are read into the
    proto as raw data. Raises :class:`ModelLoadError` with a one-line
    message on any unusable input.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file")
    if p.is_dir():
        raise ModelLoadError(f"{p}: is a directory, not an ONNX model file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read ({exc.strerror})") from exc
    if size == 0:
        raise ModelLoadError(f"{p}: empty file, not an ONNX model")
    if lazy_threshold is None:
        lazy_threshold = LAZY_PARSE_MIN_BYTES
    try:
        if size >= lazy_threshold:
            model = _parse_lazily(p)
        else:
            model = onnx.ModelProto()
            with open(p, "rb") as handle:
                model.ParseFromString(handle.read())
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read ({exc.strerror})") from exc
    except (DecodeError, RuntimeError, ValueError, _WireError) as exc:
        raise ModelLoadError(f"{p}: not a valid ONNX model (protobuf parse failed: {exc})") from exc
    _check_sane(model, p)
    try:
        _check_external_data(model, p.parent)
    except ModelLoadError as exc:  # name the model: with several inputs the tensor alone is ambiguous
        raise ModelLoadError(f"{p}: {exc}") from exc
    if load_weights:
        onnx.external_data_helper.load_external_data_for_model(model, str(p.parent))
    log.debug("loaded %s (ir %s)", p, model.ir_version)
    return LoadedModel(proto=model, path=p, store=TensorStore(p.parent, model_path=p))


class _WireError(ValueError):
    pass


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint too long")


def _fields(buf, start: int, end: int):
    """Yield (field number, wire type, value start, value end, field start) of one message."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            value_start = field_start
        elif wire == 1:
            value_start, pos = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(buf, pos)
            pos = value_start + length
        elif wire == 5:
            value_start, pos = pos, pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > end or number == 0:
            raise _WireError("truncated message")
        yield number, wire, value_start, pos, field_start


_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_RAW_DATA = 7, 5, 9


def _parse_lazily(path: Path) -> onnx.ModelProto:
    """Parse ``path`` leaving large main-graph initializer payloads in the file.

    Protobuf merges repeated occurrences of a message's fields, so the model is rebuilt from the
    bytes of every field except the graph's initializers; each initializer is parsed without its
    ``raw_data`` and given an external-data reference (location: the model file itself, with the
    payload's offset and length) that :class:`TensorStore` memory-maps on demand.
    """
    import mmap

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        model_rest = bytearray()
        graph_spans = []
        for number, wire, vs, ve, fs in _fields(buf, 0, len(buf)):
            if number == _MODEL_GRAPH and wire == 2:
                graph_spans.append((vs, ve))
            else:
                model_rest += buf[fs:ve]
        model = onnx.ModelProto()
        model.ParseFromString(bytes(model_rest))
        if not graph_spans:
            return model
        graph_rest = bytearray()
        tensors: list[TensorProto] = []
        graph_fields = (f for span in graph_spans for f in _fields(buf, *span))
        for number, wire, vs, ve, fs in graph_fields:
            if number != _GRAPH_INITIALIZER or wire != 2:
                graph_rest += buf[fs:ve]
                continue
            header = bytearray()
            payload = None
            for t_number, t_wire, tvs, tve, tfs in _fields(buf, vs, ve):
                if t_number == _TENSOR_RAW_DATA and t_wire == 2 and tve - tvs >= LAZY_PAYLOAD_MIN_BYTES:
                    payload = (tvs, tve - tvs)
                else:
                    header += buf[tfs:tve]
            tensor = TensorProto()
            tensor.ParseFromString(bytes(header))
            if payload is not None:
                tensor.data_location = TensorProto.EXTERNAL
                for key, value in (("location", path.name), ("offset", str(payload[0])),
                                   ("length", str(payload[1]))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
            tensors.append(tensor)
        model.graph.ParseFromString(bytes(graph_rest))
        model.graph.initializer.extend(tensors)
    return model


def _check_sane(model: onnx.ModelProto, path: Path) -> None:
    """Protobuf parses many byte strings; reject what cannot be an ONNX model."""
    if not model.HasField("graph"):
        raise ModelLoadError(f"{path}: not an ONNX model (no graph)")
    if model.ir_version < 1 or model.ir_version > 64:
        raise ModelLoadError(f"{path}: not an ONNX model (IR version {model.ir_version})")
    if model.ir_version >= 3 and not model.opset_import:
        raise ModelLoadError(f"{path}: not a usable ONNX model (no opset imports)")
    for nodes in _node_lists(model):
        for node in nodes:
            if not node.op_type:
                raise ModelLoadError(f"{path}: not a valid ONNX model (a node has no op_type)")


class StagedOutput:
    """A model written into a private folder beside its destination, not yet visible there.

    ``model_path`` can be loaded (its external data resolves), e.g. to validate it. ``commit``
    renames the files into place (data files first, the model last); ``discard`` removes them.
    """

    def __init__(self, out: Path, folder: Path, files: list[str]):
        self.out, self.folder, self.files = out, folder, files

    @property
    def model_path(self) -> Path:
        return self.folder / self.out.name

    def commit(self) -> list[Path]:
        written = []
        for name in sorted(self.files, key=lambda n: n == self.out.name):
            os.replace(self.folder / name, self.out.parent / name)
            written.append(self.out.parent / name)
        self.discard()
        return written[::-1]

    def discard(self) -> None:
        if self.folder.exists():
            for leftover in self.folder.iterdir():
                leftover.unlink()
            self.folder.rmdir()

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_field(number: int, length: int) -> bytes:
    """Tag and length prefix of a length-delimited protobuf field."""
    return _encode_varint(number << 3 | 2) + _encode_varint(length)


_COPY_CHUNK = 16 << 20


@dataclass
class _Payload:
    """Where one initializer's bytes come from when the model is written."""

    nbytes: int
    source: Path | None = None  # copy ``nbytes`` from this file at ``offset``
    offset: int = 0
    deferred: object | None = None  # a rewrite.DeferredTensor

    def write_to(self, handle) -> None:
        if self.deferred is not None:
            written = 0
            for chunk in self.deferred.chunks():
                chunk = np.ascontiguousarray(chunk)
                handle.write(chunk.tobytes() if chunk.dtype.kind == "V" else memoryview(chunk).cast("B"))
                written += chunk.nbytes
            if written != self.nbytes:
                raise AssertionError(f"deferred tensor wrote {written} bytes, expected {self.nbytes}")
            return
        with open(self.source, "rb") as src:
            src.seek(self.offset)
            left = self.nbytes
            while left:
                block = src.read(min(left, _COPY_CHUNK))
                if not block:
                    raise ModelLoadError(f"{self.source}: external data ended early")
                handle.write(block)
                left -= len(block)


def _payload_of(tensor: TensorProto, source_dir: Path | None, deferred: dict) -> _Payload | None:
    if tensor.name in deferred:
        return _Payload(deferred[tensor.name].nbytes, deferred=deferred[tensor.name])
    if not _is_external(tensor):
        return None
    ref = external_ref(tensor)
    path = resolve_external_location(source_dir, ref.location, tensor.name)
    length = ref.length
    if length is None:
        dtype = tensor_np_dtype(tensor.data_type)
        length = dtype.itemsize * int(np.prod(list(tensor.dims), dtype=np.int64))
    return _Payload(length, source=path, offset=ref.offset)


_DATA_FIELDS = ("raw_data", "external_data", "data_location", "float_data", "int32_data",
                "int64_data", "double_data", "uint64_data", "string_data")


def _header(tensor: TensorProto) -> TensorProto:
    """The tensor's name, type, dims and metadata, without any of its data fields."""
    header = TensorProto()
    header.CopyFrom(tensor)
    for name in _DATA_FIELDS:
        header.ClearField(name)
    return header


def _raw_bytes(tensor: TensorProto) -> bytes:
    """An in-memory tensor's data in raw_data encoding (typed fields converted, 4-bit packed)."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name).raw_data


def _shell(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without its main-graph initializers (they are written separately)."""
    from .graph import light_copy

    shell = light_copy(model)
    shell.graph.ClearField("initializer")
    return shell


def _inline_nested_external(model: onnx.ModelProto, source_dir: Path | None) -> None:
    """Tensors outside the main graph's initializers that live in external files are inlined."""
    for tensor in iter_all_tensors(model, main_initializers=False):
        if _is_external(tensor):
            resolve_external_location(source_dir, external_ref(tensor).location, tensor.name)
            onnx.external_data_helper.load_external_data_for_tensor(tensor, str(source_dir))
            tensor.ClearField("data_location")


def write_model(model: onnx.ModelProto, path: Path, *, source_dir: Path | None = None,
                deferred: dict | None = None, external_data: bool | None = None,
                size_threshold: int = 1024, limit: int | None = None) -> list[str]:
    """Write ``model`` to ``path`` streaming every main-graph initializer's bytes.

    Initializer payloads come from memory, from external files under ``source_dir`` (copied in
    chunks), or from ``deferred`` tensors computed as they are written; the whole model is never
    held in memory. ``external_data``: True writes payloads of ``size_threshold`` bytes or more
    to ``<name>.data`` beside ``path``; None does so only when a single file would pass
    ``limit`` (protobuf's 2 GiB). Returns the file names written.
    """
    deferred = deferred or {}
    limit = PROTOBUF_LIMIT if limit is None else limit
    _inline_nested_external(model, source_dir)
    inits = list(model.graph.initializer)
    payloads = [_payload_of(t, source_dir, deferred) for t in inits]
    shell = _shell(model)
    if external_data is None:
        # field tags and length prefixes: at most 16 bytes per tensor, plus a safety margin
        total = shell.ByteSize() + sum(t.ByteSize() + 16 + (p.nbytes if p else 0) for t, p in zip(inits, payloads))
        external_data = total > limit - (1 << 16)
        if external_data:
            log.warning("%s would exceed protobuf's 2 GiB limit: writing its tensors to %s.data",
                        path.name, path.name)
    if external_data:
        return _write_with_external_data(shell, inits, payloads, path, size_threshold)
    graph_fields: list[tuple[bytes, _Payload | None]] = []
    graph_len = len(shell.graph.SerializeToString())
    for tensor, payload in zip(inits, payloads):
        if payload is None:
            body = tensor.SerializeToString()
            prefix = _length_field(5, len(body)) + body
        else:
            head = _header(tensor).SerializeToString() + _length_field(9, payload.nbytes)
            prefix = _length_field(5, len(head) + payload.nbytes) + head
        graph_fields.append((prefix, payload))
        graph_len += len(prefix) + (payload.nbytes if payload else 0)
    graph_shell = shell.graph.SerializeToString()
    shell.ClearField("graph")
    with open(path, "wb") as handle:
        handle.write(shell.SerializeToString())
        handle.write(_length_field(7, graph_len))
        handle.write(graph_shell)
        for prefix, payload in graph_fields:
            handle.write(prefix)
            if payload is not None:
                payload.write_to(handle)
    return [path.name]


def _write_with_external_data(shell: onnx.ModelProto, inits, payloads, path: Path,
                              size_threshold: int) -> list[str]:
    data_name = path.name + ".data"
    offset = 0
    headers = []
    with open(path.parent / data_name, "wb") as data:
        for tensor, payload in zip(inits, payloads):
            if payload is None and (tensor.ByteSize() < size_threshold or tensor.data_type == TensorProto.STRING):
                headers.append(tensor)  # small, or strings (never stored as raw data)
                continue
            if payload is None:  # an in-memory tensor large enough to move out
                raw = _raw_bytes(tensor)
                payload = _Payload(len(raw), deferred=_BytesChunks(raw))
            header = _header(tensor)
            align = 4096 if payload.nbytes >= (1 << 20) else 64
            pad = (-offset) % align
            data.write(b"\0" * pad)
            offset += pad
            payload.write_to(data)
            header.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(payload.nbytes))):
                entry = header.external_data.add()
                entry.key, entry.value = key, value
            offset += payload.nbytes
            headers.append(header)
    shell.graph.initializer.extend(headers)
    with open(path, "wb") as handle:
        handle.write(shell.SerializeToString())
    return [path.name, data_name] if offset else [path.name]


@dataclass
class _BytesChunks:
    data: bytes

    def chunks(self):
        yield np.frombuffer(self.data, dtype=np.uint8)


def stage_model(model: onnx.ModelProto, out: str | os.PathLike, *, external_data: bool | None = None,
                source_dir: Path | None = None, deferred: dict | None = None) -> StagedOutput:
    """Write ``model`` into a temporary folder next to ``out`` (see :func:`write_model`).

    External tensors are read from ``source_dir``; the output never shares the input's data file.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise ModelLoadError(f"{out.parent}: output folder does not exist")
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staged = StagedOutput(out, folder, [])
    try:
        staged.files = write_model(model, staged.model_path, source_dir=source_dir, deferred=deferred,
                                   external_data=external_data)
        if (folder / (out.name + ".data")).exists() and out.name + ".data" not in staged.files:
            (folder / (out.name + ".data")).unlink()
    except BaseException:
        staged.discard()
        raise
    return staged


def save_model_atomic(model: onnx.ModelProto, out: str | os.PathLike, *,
                      external_data: bool | None = None, source_dir: Path | None = None,
                      deferred: dict | None = None) -> list[Path]:
    """Write ``model`` to ``out`` atomically (staged beside it, then renamed into place).

    Returns the files written.
    """
    return stage_model(model, out, external_data=external_data, source_dir=source_dir,
                       deferred=deferred).commit()
