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
        return any(_is_external(t) for t in iter_all_tensors(self.proto))

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


def iter_all_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every TensorProto that may hold data: initializers and Constant/attribute tensors."""
    for graph in iter_graphs(model.graph):
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

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.bytes_read = 0

    def external_path(self, tensor: TensorProto) -> Path:
        return resolve_external_location(self.base_dir, external_ref(tensor).location, tensor.name)

    def array(self, tensor: TensorProto) -> np.ndarray:
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


def load_model(path: str | os.PathLike, *, load_weights: bool = False) -> LoadedModel:
    """Parse a model file, check it is usable, and keep external data lazy.

    With ``load_weights`` external tensors are read into the proto as raw data (for small models
    that are about to be rewritten in memory). Raises :class:`ModelLoadError` with a one-line
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
    try:
        with open(p, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read ({exc.strerror})") from exc
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{p}: not a valid ONNX model (protobuf parse failed: {exc})") from exc
    del data
    _check_sane(model, p)
    try:
        _check_external_data(model, p.parent)
    except ModelLoadError as exc:  # name the model: with several inputs the tensor alone is ambiguous
        raise ModelLoadError(f"{p}: {exc}") from exc
    if load_weights:
        onnx.external_data_helper.load_external_data_for_model(model, str(p.parent))
    log.debug("loaded %s (ir %s)", p, model.ir_version)
    return LoadedModel(proto=model, path=p, store=TensorStore(p.parent))


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


def stage_model(model: onnx.ModelProto, out: str | os.PathLike, *, external_data: bool = False,
                source_dir: Path | None = None) -> StagedOutput:
    """Write ``model`` into a temporary folder next to ``out``.

    Tensors that still reference external data are read from ``source_dir``. With
    ``external_data``, or when the model would pass protobuf's 2 GiB limit, tensor bytes go to
    ``<out name>.data`` beside the model (never into the input's data file).
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise ModelLoadError(f"{out.parent}: output folder does not exist")
    if source_dir is not None and any(_is_external(t) for t in iter_all_tensors(model)):
        onnx.external_data_helper.load_external_data_for_model(model, str(source_dir))
    if not external_data and model.ByteSize() > PROTOBUF_LIMIT:
        external_data = True
        log.warning("the output exceeds protobuf's 2 GiB limit; writing its tensors to %s.data",
                    out.name)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staged = StagedOutput(out, folder, [out.name])
    try:
        if external_data:
            data_name = out.name + ".data"
            onnx.external_data_helper.convert_model_to_external_data(
                model, all_tensors_to_external_data=True, location=data_name, size_threshold=1024)
            onnx.external_data_helper.write_external_data_tensors(model, str(folder))
            if (folder / data_name).exists():
                staged.files.append(data_name)
        with open(staged.model_path, "wb") as handle:
            handle.write(model.SerializeToString())
    except BaseException:
        staged.discard()
        raise
    return staged


def save_model_atomic(model: onnx.ModelProto, out: str | os.PathLike, *,
                      external_data: bool = False, source_dir: Path | None = None) -> list[Path]:
    """Write ``model`` to ``out`` atomically (staged beside it, then renamed into place).

    Returns the files written. Note: tensors are converted in ``model`` when external data is
    written; pass a copy if the caller still needs it.
    """
    return stage_model(model, out, external_data=external_data, source_dir=source_dir).commit()
