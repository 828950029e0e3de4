"""Run an original and a candidate model in onnxruntime and measure how far apart they are.

Two questions, answered with numbers first and a verdict second (as Polygraphy does):

1. End to end: on the same inputs, how far are the candidate's outputs from the original's?
   Per output: max |a-b|, max |a-b|/max(|b|, tiny), mean |a-b|, cosine similarity, and the
   count of elements with |a-b| > atol + rtol*|b|, where a is the candidate and b the original.
2. Per fold: a deep network amplifies rounding, so an end-to-end difference cannot tell a wrong
   fold from a chaotic model. Each folded BatchNorm is therefore also checked *alone*: the
   candidate's nodes that compute the tensor the fold must preserve are run on the ORIGINAL
   model's own values of their inputs, and compared with the original's value of that tensor.
   A fold passes when max |a-b| <= fold_atol + fold_rtol * max|b| (an error normalized by the
   reference's magnitude; see ``FOLD_TOLERANCES``).

Both models run with every onnxruntime graph optimization off: at the basic level onnxruntime
folds Conv+BatchNormalization itself, which would hide a wrong fold in the candidate.

The per-fold check costs a bounded number of runs per sample: one of the original with the
needed tensors added as graph outputs, one of the candidate, and one of a "probe" model holding
every fold's slice of the candidate. Edited models are handed to onnxruntime as bytes with
``session.model_external_initializers_file_folder_path`` pointing at the source model's folder,
so external weights are read in place and never copied. (A temporary folder with symlinks to the
weights does not work: onnxruntime resolves the links and refuses data outside the model folder.)
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from bnfold.errors import InputError, ModelLoadError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# End-to-end tolerances per output element type: (atol, rtol); an element mismatches when
# |candidate - original| > atol + rtol * |original|. Integer and bool outputs are compared exactly.
OUTPUT_TOLERANCES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "float64": (1e-9, 1e-7),
        "float32": (1e-4, 1e-3),
        "float16": (1e-2, 1e-2),
        "bfloat16": (5e-2, 5e-2),
    }
)

# Per-fold tolerances per element type of the preserved tensor: (fold_atol, fold_rtol); a fold
# passes when max|candidate - original| <= fold_atol + fold_rtol * max|original|.
# Measured with onnxruntime 1.31 on CPU (Conv 3x3/1x1/depthwise up to 512 channels, Gemm up to
# K=25088; BN stats "trained", var in [1e-4, 1e-3], mean 10x std, eps 1e-2; error divided by
# max|reference|):
#   float32  correct fold (float64 or float32 arithmetic) <= 6.2e-7; one channel's scale off by 1%
#            (the least visible channel) >= 2.7e-5; eps 1e-2 dropped >= 0.2.
#   float16  correct fold <= 1.2e-3; eps 1e-2 dropped >= 0.25. A 1% change in one channel is below
#            float16 resolution and is not reliably caught.
#   bfloat16 (numpy emulation: float32 accumulation, bfloat16 storage; onnxruntime has no CPU
#            kernels) correct fold <= 7.8e-3; eps 1e-2 dropped >= 0.25.
#   float64  correct fold <= 1.5e-15; a fold done in float32 arithmetic ~1e-7 (fails, on purpose);
#            epsilon taken as the decimal 1e-2 instead of the float32 attribute value: up to 5e-9.
FOLD_TOLERANCES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "float64": (1e-12, 1e-10),
        "float32": (1e-6, 1e-5),
        "float16": (1e-3, 5e-3),
        "bfloat16": (1e-2, 3e-2),
    }
)

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
CUDA_PROVIDER_OPTIONS: Mapping[str, str] = MappingProxyType(
    {"use_tf32": "0"}
)  # float32 means float32

ROUNDING_NOTE = (
    "every fold passed on its own; the end-to-end difference is rounding amplified by the network"
)
# When every fold passes on its own, an output beyond tolerance is taken as amplified rounding
# (the verdict passes) only while it still points the same way as the reference: a structural
# mistake outside the folds drives the cosine far below this.
AMPLIFIED_MIN_COSINE = 0.999
AMPLIFIED_NOTE = (
    "every fold passed on its own and the outputs agree in direction (cosine >= "
    f"{AMPLIFIED_MIN_COSINE}): the end-to-end difference is rounding amplified by the network, "
    "so the verdict passes"
)

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_EXTERNAL_FOLDER_KEY = "session.model_external_initializers_file_folder_path"
_TINY = float(np.finfo(np.float64).tiny)
_RANDOM_INT_HIGH = 8  # random integer inputs are drawn from [0, 8)
_MAX_SLICE_NODES = 256
_CHUNK = 1 << 20  # elements compared at a time
_FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
_ORT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "tensor(float)": "float32",
        "tensor(double)": "float64",
        "tensor(float16)": "float16",
        "tensor(bfloat16)": "bfloat16",
        "tensor(int8)": "int8",
        "tensor(int16)": "int16",
        "tensor(int32)": "int32",
        "tensor(int64)": "int64",
        "tensor(uint8)": "uint8",
        "tensor(uint16)": "uint16",
        "tensor(uint32)": "uint32",
        "tensor(uint64)": "uint64",
        "tensor(bool)": "bool",
        "tensor(string)": "string",
    }
)


# --------------------------------------------------------------------------------------------
# Public data


@dataclasses.dataclass(frozen=True)
class FoldProbe:
    """One folded BatchNorm to check alone.

    ``tensor`` names a tensor of both main graphs whose value the fold must preserve: for a
    Conv->BN fold, the BN's output, which the folded Conv now writes.
    """

    batchnorm: str
    into: str
    tensor: str


@dataclasses.dataclass(frozen=True)
class OutputComparison:
    """Candidate against original for one graph output, over all samples.

    The numbers are None where they cannot be computed (shapes differ, string outputs).
    """

    name: str
    dtype: str
    max_abs: float | None
    max_rel: float | None
    mean_abs: float | None
    cosine: float | None
    mismatches: int
    total: int
    atol: float
    rtol: float
    passed: bool


@dataclasses.dataclass(frozen=True)
class FoldComparison:
    """One fold checked alone. ``passed`` is None when the fold could not be attributed; then
    ``note`` says why and the numbers are None."""

    batchnorm: str
    into: str
    max_abs: float | None
    max_rel: float | None
    passed: bool | None
    note: str | None = None
    tensor: str = ""
    reference_max: float | None = None  # max |original value of tensor| over all samples
    atol: float | None = None
    rtol: float | None = None

    @property
    def normalized_error(self) -> float | None:
        """max_abs / max|reference|: the number the verdict is about."""
        if self.max_abs is None or self.reference_max is None:
            return None
        if self.max_abs == 0.0:
            return 0.0
        return self.max_abs / max(self.reference_max, _TINY)


@dataclasses.dataclass(frozen=True)
class ValidationResult:
    provider: str
    reference_provider: str
    seed: int
    samples: int
    outputs: tuple[OutputComparison, ...]
    folds: tuple[FoldComparison, ...]  # worst first: failed, not attributed, passed
    passed: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (schema_version 1); NaN and infinities become None."""
        return {
            "schema_version": SCHEMA_VERSION,
            "provider": self.provider,
            "reference_provider": self.reference_provider,
            "seed": self.seed,
            "samples": self.samples,
            "outputs": [
                {
                    "name": o.name,
                    "dtype": o.dtype,
                    "max_abs": _json_float(o.max_abs),
                    "max_rel": _json_float(o.max_rel),
                    "mean_abs": _json_float(o.mean_abs),
                    "cosine": _json_float(o.cosine),
                    "mismatches": o.mismatches,
                    "total": o.total,
                    "atol": _json_float(o.atol),
                    "rtol": _json_float(o.rtol),
                    "passed": o.passed,
                }
                for o in self.outputs
            ],
            "folds": [
                {
                    "batchnorm": f.batchnorm,
                    "into": f.into,
                    "max_abs": _json_float(f.max_abs),
                    "max_rel": _json_float(f.max_rel),
                    "passed": f.passed,
                }
                for f in self.folds
            ],
            "passed": self.passed,
            "notes": list(self.notes),
        }


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# --------------------------------------------------------------------------------------------
# Providers


def resolve_provider(name: str) -> tuple[list[Any], str | None]:
    """Turn "auto" | "cpu" | "cuda" into an onnxruntime providers list and an optional note.

    "auto" means CUDA when onnxruntime lists CUDAExecutionProvider and a session on it really
    starts, else CPU with a one-line note saying why. "cuda" without CUDA raises InputError.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in PROVIDER_CHOICES:
        raise InputError(f"unknown provider {name!r}; choose one of: {', '.join(PROVIDER_CHOICES)}")
    if key == "cpu":
        return [_CPU], None
    available, reason = cuda_status()
    if available:
        return [(_CUDA, dict(CUDA_PROVIDER_OPTIONS)), _CPU], None
    if key == "cuda":
        raise InputError(f"provider 'cuda' requested but CUDA is not available: {reason}")
    return [_CPU], f"CUDA not available, ran on CPU: {reason}"


def provider_label(providers: Sequence[Any]) -> str:
    """ "cuda" or "cpu" for a providers list made by resolve_provider."""
    first = providers[0]
    first_name = first[0] if isinstance(first, tuple) else first
    return "cuda" if first_name == _CUDA else "cpu"


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """Whether a CUDA session really starts here, and if not, why (one line). Probed once per
    process: onnxruntime must list CUDAExecutionProvider and a tiny model must run on it."""
    if _CUDA not in ort.get_available_providers():
        return False, (
            f"onnxruntime {ort.__version__} does not list CUDAExecutionProvider "
            "(the onnxruntime-gpu wheel provides it)"
        )
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "bnfold_cuda_probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    try:
        session = ort.InferenceSession(
            model.SerializeToString(),
            _session_options(),
            providers=[(_CUDA, dict(CUDA_PROVIDER_OPTIONS))],
            enable_fallback=0,
        )
        session.run(None, {"x": np.zeros(1, np.float32)})
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        return False, f"starting a CUDA session failed: {_one_line(exc)}"
    if _CUDA not in session.get_providers():
        return False, "onnxruntime fell back to CPU (CUDA or cuDNN libraries could not be loaded)"
    return True, ""


# --------------------------------------------------------------------------------------------
# Shapes and inputs


def parse_shape_spec(spec: str) -> tuple[str, tuple[int, ...]]:
    """Parse "name=1x3x224x224" into ("name", (1, 3, 224, 224)). The name may contain '='."""
    if not isinstance(spec, str) or "=" not in spec:
        raise InputError(f"bad shape {spec!r}: expected NAME=DIMxDIMx..., e.g. input=1x3x224x224")
    name, _, dims_text = spec.strip().rpartition("=")
    name = name.strip()
    if not name:
        raise InputError(f"bad shape {spec!r}: the input name is empty")
    parts = dims_text.strip().lower().split("x")
    dims = []
    for part in parts:
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise InputError(
                f"bad shape {spec!r}: dimension {part!r} is not a positive integer "
                "(expected NAME=DIMxDIMx..., e.g. input=1x3x224x224)"
            )
        dims.append(int(part))
    return name, tuple(dims)


def parse_shape_specs(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse several --shape values; naming an input twice is an error."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, dims = parse_shape_spec(spec)
        if name in shapes:
            raise InputError(f"input {name!r} is given two shapes")
        shapes[name] = dims
    return shapes


@dataclasses.dataclass(frozen=True)
class _TensorSig:
    name: str
    type: str  # onnxruntime's type string, e.g. "tensor(float)"
    shape: tuple[int | str | None, ...]

    @property
    def dtype(self) -> str:
        return _ORT_TYPES.get(self.type, self.type)


def _signature(args: Sequence[Any]) -> list[_TensorSig]:
    return [
        _TensorSig(a.name, a.type, tuple(d if isinstance(d, (int, str)) else None for d in a.shape))
        for a in args
    ]


def _shapes_compatible(a: tuple, b: tuple) -> bool:
    # onnxruntime reports both scalars and unknown ranks as []: only compare known ranks.
    if not a or not b:
        return True
    if len(a) != len(b):
        return False
    return all(
        not (isinstance(x, int) and isinstance(y, int) and x != y)
        for x, y in zip(a, b, strict=True)
    )


def _merge_shapes(a: tuple, b: tuple) -> tuple:
    if not a or not b:
        return a or b
    return tuple(
        x if isinstance(x, int) else (y if isinstance(y, int) else x)
        for x, y in zip(a, b, strict=True)
    )


def _check_signatures(
    original: tuple[list[_TensorSig], list[_TensorSig]],
    candidate: tuple[list[_TensorSig], list[_TensorSig]],
) -> list[_TensorSig]:
    """Raise InputError naming the first difference; return the merged input signature."""
    merged_inputs: list[_TensorSig] = []
    for kind, orig_sigs, cand_sigs in (
        ("input", original[0], candidate[0]),
        ("output", original[1], candidate[1]),
    ):
        orig_by_name = {s.name: s for s in orig_sigs}
        cand_by_name = {s.name: s for s in cand_sigs}
        for name in orig_by_name:
            if name not in cand_by_name:
                raise InputError(
                    f"the candidate has no graph {kind} named {name!r}; "
                    f"its {kind}s are: {', '.join(map(repr, cand_by_name)) or 'none'}"
                )
        for name in cand_by_name:
            if name not in orig_by_name:
                raise InputError(
                    f"the candidate has a graph {kind} {name!r} that the original lacks; "
                    f"the original's {kind}s are: {', '.join(map(repr, orig_by_name)) or 'none'}"
                )
        for name, o in orig_by_name.items():
            c = cand_by_name[name]
            if o.type != c.type:
                raise InputError(
                    f"graph {kind} {name!r} is {o.dtype} in the original "
                    f"but {c.dtype} in the candidate"
                )
            if not _shapes_compatible(o.shape, c.shape):
                raise InputError(
                    f"graph {kind} {name!r} has shape {_shape_text(o.shape)} in the original "
                    f"but {_shape_text(c.shape)} in the candidate"
                )
            if kind == "input":
                merged_inputs.append(_TensorSig(name, o.type, _merge_shapes(o.shape, c.shape)))
    return merged_inputs


def _shape_text(shape: tuple) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _check_shape_names(shapes: Mapping[str, Sequence[int]], inputs: list[_TensorSig]) -> None:
    names = [s.name for s in inputs]
    for name in shapes:
        if name not in names:
            raise InputError(
                f"--shape names unknown input {name!r}; the model's inputs are: "
                f"{', '.join(map(repr, names)) or 'none'}"
            )


def _concrete_shapes(
    inputs: list[_TensorSig], shapes: Mapping[str, Sequence[int]]
) -> tuple[dict[str, tuple[int, ...]], list[str]]:
    """A concrete shape per input, from the model's static dims and ``shapes``; symbolic dims
    not given default to 1, with a note for each."""
    concrete: dict[str, tuple[int, ...]] = {}
    notes: list[str] = []
    for sig in inputs:
        if sig.name in shapes:
            dims = tuple(int(d) for d in shapes[sig.name])
            _check_given_shape(sig, dims, "--shape")
            concrete[sig.name] = dims
            continue
        dims_list = []
        for axis, dim in enumerate(sig.shape):
            if isinstance(dim, int) and dim >= 0:
                dims_list.append(dim)
                continue
            label = f"{dim!r}" if isinstance(dim, str) and dim else "unnamed"
            notes.append(f"input {sig.name!r} dim {axis} ({label}) set to 1; use --shape")
            dims_list.append(1)
        concrete[sig.name] = tuple(dims_list)
    return concrete, notes


def _check_given_shape(sig: _TensorSig, dims: tuple[int, ...], source: str) -> None:
    if not sig.shape:  # scalar or unknown rank: onnxruntime cannot tell us which
        return
    if len(dims) != len(sig.shape):
        raise InputError(
            f"{source}: input {sig.name!r} has shape {_shape_text(dims)} but the model "
            f"expects rank {len(sig.shape)} {_shape_text(sig.shape)}"
        )
    for axis, (given, model_dim) in enumerate(zip(dims, sig.shape, strict=True)):
        if isinstance(model_dim, int) and model_dim >= 0 and given != model_dim:
            raise InputError(
                f"{source}: input {sig.name!r} has shape {_shape_text(dims)} but the model "
                f"fixes dim {axis} to {model_dim} {_shape_text(sig.shape)}"
            )


def _numpy_dtype(dtype_name: str) -> np.dtype:
    if dtype_name == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    if dtype_name == "string":
        return np.dtype(object)
    return np.dtype(dtype_name)


def _random_array(rng: np.random.Generator, sig: _TensorSig, shape: tuple[int, ...]) -> np.ndarray:
    dtype = sig.dtype
    if dtype in _FLOAT_DTYPES:
        return np.asarray(rng.standard_normal(shape)).astype(_numpy_dtype(dtype))
    if dtype == "bool":
        return np.asarray(rng.integers(0, 2, size=shape)).astype(bool)
    if dtype.startswith(("int", "uint")):
        return np.asarray(rng.integers(0, _RANDOM_INT_HIGH, size=shape)).astype(dtype)
    raise InputError(
        f"input {sig.name!r} is {sig.dtype}; bnfold cannot make random values of that type, "
        "give real inputs (--inputs)"
    )


def _sample_files(path: Path, inputs: list[_TensorSig]) -> list[Path]:
    if not path.exists():
        raise InputError(f"inputs not found: {path}")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise InputError(
                f"inputs file {path} is not a .npz file (or give a folder of .npz/.npy)"
            )
        return [path]
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".npz", ".npy")
    )
    if not files:
        raise InputError(f"inputs folder {path} holds no .npz or .npy files")
    if any(p.suffix.lower() == ".npy" for p in files) and len(inputs) != 1:
        raise InputError(
            f"inputs folder {path} holds .npy files, which fit only single-input models; "
            f"this model has {len(inputs)} inputs: use one .npz per sample"
        )
    return files


def _load_sample(
    path: Path, inputs: list[_TensorSig], shapes: Mapping[str, Sequence[int]]
) -> dict[str, np.ndarray]:
    try:
        if path.suffix.lower() == ".npy":
            feed = {inputs[0].name: np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as archive:
                feed = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read inputs file {path}: {_one_line(exc)}") from exc
    by_name = {s.name: s for s in inputs}
    for key in feed:
        if key not in by_name:
            raise InputError(
                f"{path.name}: unknown input {key!r}; the model's inputs are: "
                f"{', '.join(map(repr, by_name))}"
            )
    for sig in inputs:
        if sig.name not in feed:
            raise InputError(f"{path.name}: input {sig.name!r} is missing")
        array = feed[sig.name]
        want = _numpy_dtype(sig.dtype)
        if sig.dtype == "bfloat16" and array.dtype in (np.dtype("V2"), np.dtype(np.uint16)):
            array = array.view(want)  # numpy stores bfloat16 arrays as raw 2-byte records
        if array.dtype != want:
            raise InputError(
                f"{path.name}: input {sig.name!r} is {array.dtype} but the model wants {sig.dtype}"
            )
        _check_given_shape(sig, tuple(array.shape), path.name)
        if sig.name in shapes and tuple(array.shape) != tuple(shapes[sig.name]):
            raise InputError(
                f"{path.name}: input {sig.name!r} has shape {_shape_text(tuple(array.shape))} "
                f"but --shape says {_shape_text(tuple(shapes[sig.name]))}"
            )
        feed[sig.name] = array
    return feed


# --------------------------------------------------------------------------------------------
# Error statistics


class _Stats:
    """Running statistics of actual (candidate) against expected (original), over samples.

    NaN against NaN at the same place counts as equal; NaN against a number, or an infinity
    against anything else, is an infinite difference. The cosine uses the places where both
    values are finite.
    """

    def __init__(self) -> None:
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.sum_abs = 0.0
        self.total = 0
        self.mismatches = 0
        self.dot = 0.0
        self.norm_actual = 0.0
        self.norm_expected = 0.0
        self.reference_max = 0.0
        self.shape_mismatch: str | None = None
        self.strings = False

    def add(self, actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> None:
        if actual.shape != expected.shape:
            self.shape_mismatch = (
                f"shape {_shape_text(actual.shape)} in the candidate but "
                f"{_shape_text(expected.shape)} in the original"
            )
            self.total += int(expected.size)
            self.mismatches += int(expected.size)
            return
        self.total += int(expected.size)
        if expected.dtype == object:  # strings: equality only
            self.mismatches += int(np.count_nonzero(actual != expected))
            self.strings = True
            return
        flat_actual, flat_expected = actual.reshape(-1), expected.reshape(-1)
        for start in range(0, flat_expected.size, _CHUNK):  # bounded float64 temporaries
            stop = start + _CHUNK
            self._add_chunk(flat_actual[start:stop], flat_expected[start:stop], atol, rtol)

    def _add_chunk(
        self, actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float
    ) -> None:
        a = actual.astype(np.float64)
        b = expected.astype(np.float64)
        if expected.dtype.kind in "biu":  # exact types: compare natively (int64 > 2**53)
            same = actual == expected
        else:
            same = (a == b) | (np.isnan(a) & np.isnan(b))
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            diff = np.abs(a - b)
            diff[same] = 0.0
            diff[np.isnan(diff)] = np.inf
            magnitude = np.abs(b)
            rel = diff / np.maximum(magnitude, _TINY)
            rel[same] = 0.0
            rel[np.isnan(rel)] = np.inf
            magnitude[~np.isfinite(magnitude)] = 0.0
        if expected.dtype.kind in "biu":
            mismatch = ~same
        else:
            mismatch = ~same & (~np.isfinite(diff) | (diff > atol + rtol * magnitude))
        finite = np.isfinite(a) & np.isfinite(b)
        af, bf = a[finite], b[finite]
        self.max_abs = max(self.max_abs, float(diff.max()))
        self.max_rel = max(self.max_rel, float(rel.max()))
        self.sum_abs += float(diff.sum())
        self.mismatches += int(np.count_nonzero(mismatch))
        self.dot += float(af @ bf)
        self.norm_actual += float(af @ af)
        self.norm_expected += float(bf @ bf)
        if bf.size:
            self.reference_max = max(self.reference_max, float(np.abs(bf).max()))

    @property
    def numeric(self) -> bool:
        return self.shape_mismatch is None and not self.strings

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.total if self.total else 0.0

    @property
    def cosine(self) -> float:
        if self.norm_actual == 0.0 and self.norm_expected == 0.0:
            return 1.0
        if self.norm_actual == 0.0 or self.norm_expected == 0.0:
            return 0.0
        value = self.dot / math.sqrt(self.norm_actual * self.norm_expected)
        return min(1.0, max(-1.0, value))


def _output_tolerance(dtype: str, atol: float | None, rtol: float | None) -> tuple[float, float]:
    if dtype not in _FLOAT_DTYPES:
        return 0.0, 0.0
    default_atol, default_rtol = OUTPUT_TOLERANCES[dtype]
    return (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)


def _fold_tolerance(dtype: str, atol: float | None, rtol: float | None) -> tuple[float, float]:
    default_atol, default_rtol = FOLD_TOLERANCES.get(dtype, (0.0, 0.0))
    return (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)


# --------------------------------------------------------------------------------------------
# Fold slices


@dataclasses.dataclass(frozen=True)
class _Slice:
    """The candidate nodes that compute one probe's tensor from the original's values."""

    probe: FoldProbe
    nodes: tuple[int, ...]  # candidate main-graph node indices, in graph order
    frontier: tuple[str, ...]  # original tensors the slice reads
    initializers: tuple[str, ...]  # candidate initializers the slice reads


class _GraphIndex:
    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.initializers = {t.name for t in graph.initializer}
        self.initializers |= {s.values.name for s in graph.sparse_initializer}
        self.inputs = {v.name for v in graph.input} - self.initializers
        self.producer: dict[str, int] = {}
        self.constant_producer: dict[str, int] = {}
        for index, node in enumerate(graph.node):
            for out in node.output:
                if out:
                    self.producer[out] = index
                    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                        self.constant_producer[out] = index
        self.non_constant = self.inputs | set(self.producer)

    def knows(self, name: str) -> bool:
        return name in self.producer or name in self.initializers or name in self.inputs


def _plan_slice(probe: FoldProbe, original: _GraphIndex, candidate: _GraphIndex) -> _Slice | str:
    """The slice for ``probe``, or the reason it cannot be attributed."""
    t = probe.tensor
    if not original.knows(t):
        return f"tensor {t!r} is not in the original's main graph"
    if t in original.initializers:
        return f"tensor {t!r} is a constant (initializer) in the original"
    if t in original.inputs:
        return f"tensor {t!r} is a graph input of the original; nothing computes it"
    if not candidate.knows(t):
        return f"tensor {t!r} is not in the candidate's main graph"
    if t in candidate.initializers or t in candidate.constant_producer:
        return f"tensor {t!r} is a constant in the candidate"
    if t in candidate.inputs:
        return f"tensor {t!r} is a graph input of the candidate"
    original_values = original.non_constant
    nodes: set[int] = set()
    frontier: list[str] = []
    initializers: list[str] = []
    seen: set[str] = {t}
    stack = [candidate.producer[t]]
    while stack:
        index = stack.pop()
        if index in nodes:
            continue
        nodes.add(index)
        if len(nodes) > _MAX_SLICE_NODES:
            return (
                f"the candidate computes {t!r} from more than {_MAX_SLICE_NODES} nodes that have "
                "no counterpart in the original (were tensor names kept?)"
            )
        node = candidate.graph.node[index]
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            return f"the candidate computes {t!r} with a {node.op_type} node that holds a subgraph"
        for name in node.input:
            if not name or name in seen:
                continue
            seen.add(name)
            if name in candidate.initializers:
                initializers.append(name)
            elif name in candidate.constant_producer:
                nodes.add(candidate.constant_producer[name])
            elif name in original_values:
                frontier.append(name)
            elif name in candidate.producer:
                stack.append(candidate.producer[name])
            else:
                return (
                    f"tensor {name!r}, read while computing {t!r} in the candidate, has no "
                    "producer in its main graph"
                )
    return _Slice(probe, tuple(sorted(nodes)), tuple(frontier), tuple(initializers))


class _ProbeKit:
    """The parts of the candidate that the probe models need, cut out so that the candidate's
    proto can be dropped: each slice's nodes, renamed with the prefix ``p{key}/`` so slices never
    clash (one slice's frontier may be another's output), and the constants they read, which
    keep their names and their external-data references."""

    def __init__(self, candidate: onnx.ModelProto, slices: Sequence[tuple[int, _Slice]]) -> None:
        graph = candidate.graph
        self.ir_version = candidate.ir_version
        self.opset_import = [_copy(o) for o in candidate.opset_import]
        self.functions = [_copy(f) for f in candidate.functions]
        constants = {t.name for t in graph.initializer} | {
            s.values.name for s in graph.sparse_initializer
        }
        needed = {name for _, slice_ in slices for name in slice_.initializers}
        # Copies, so that nothing here keeps the candidate's proto alive.
        self.initializers = {t.name: _copy(t) for t in graph.initializer if t.name in needed}
        self.sparse_initializers = {
            s.values.name: _copy(s) for s in graph.sparse_initializer if s.values.name in needed
        }
        self.slices = dict(slices)
        self.nodes: dict[int, list[onnx.NodeProto]] = {}
        for key, slice_ in slices:
            prefix = _probe_prefix(key)
            renamed = []
            for index in slice_.nodes:
                node = onnx.NodeProto()
                node.CopyFrom(graph.node[index])
                node.name = prefix + node.name if node.name else ""
                node.input[:] = [n if (not n or n in constants) else prefix + n for n in node.input]
                node.output[:] = [
                    n if (not n or n in constants) else prefix + n for n in node.output
                ]
                renamed.append(node)
            self.nodes[key] = renamed

    def model(self, keys: Sequence[int], dtypes: Mapping[str, np.dtype]) -> onnx.ModelProto:
        """A model computing the slices ``keys``; graph inputs and outputs are typed from
        ``dtypes`` (the original's values) and carry no shape."""
        nodes: list[onnx.NodeProto] = []
        inputs: list[onnx.ValueInfoProto] = []
        outputs: list[onnx.ValueInfoProto] = []
        needed: set[str] = set()
        for key in keys:
            slice_ = self.slices[key]
            prefix = _probe_prefix(key)
            inputs += [_typed_value_info(prefix + name, dtypes[name]) for name in slice_.frontier]
            outputs.append(
                _typed_value_info(prefix + slice_.probe.tensor, dtypes[slice_.probe.tensor])
            )
            nodes += self.nodes[key]
            needed.update(slice_.initializers)
        graph = helper.make_graph(
            nodes,
            "bnfold_fold_probe",
            inputs,
            outputs,
            initializer=[t for name, t in self.initializers.items() if name in needed],
            sparse_initializer=[
                t for name, t in self.sparse_initializers.items() if name in needed
            ],
        )
        model = onnx.ModelProto()
        model.ir_version = self.ir_version
        model.opset_import.extend(self.opset_import)
        model.functions.extend(self.functions)
        model.graph.CopyFrom(graph)
        return model


def _copy(message: Any) -> Any:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def _probe_prefix(key: int) -> str:
    return f"p{key}/"


def _typed_value_info(name: str, dtype: np.dtype) -> onnx.ValueInfoProto:
    value_info = onnx.ValueInfoProto()
    value_info.name = name
    value_info.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
    return value_info


def _instrument(model: onnx.ModelProto, extra_outputs: Sequence[str]) -> list[str]:
    """Add tensors as graph outputs (a name-only ValueInfo is enough for onnxruntime).
    Returns the names actually added."""
    present = {o.name for o in model.graph.output}
    added = []
    for name in extra_outputs:
        if name not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
            present.add(name)
            added.append(name)
    return added


# --------------------------------------------------------------------------------------------
# onnxruntime plumbing


def _session_options(external_folder: Path | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    if external_folder is not None:
        options.add_session_config_entry(_EXTERNAL_FOLDER_KEY, str(external_folder))
    return options


def _open_session(
    source: Path | bytes, providers: list[Any], role: str, folder: Path | None = None
) -> ort.InferenceSession:
    """A session on a model file, or on model bytes whose external data lie in ``folder``."""
    try:
        model = str(source) if isinstance(source, Path) else source
        session = ort.InferenceSession(
            model,
            _session_options(folder if isinstance(source, bytes) else None),
            providers=providers,
            enable_fallback=0,
        )
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        raise ModelLoadError(f"onnxruntime cannot load the {role}: {_one_line(exc)}") from exc
    wanted = provider_label(providers)
    if wanted == "cuda" and _CUDA not in session.get_providers():
        logger.warning("the %s session did not get CUDAExecutionProvider", role)
    return session


def _session_run(
    session: ort.InferenceSession, names: list[str], feed: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """session.run, except that bfloat16 goes through OrtValues: onnxruntime's Python layer
    cannot turn an ml_dtypes.bfloat16 array into a tensor, or a bfloat16 tensor into numpy."""
    bf16 = np.dtype(ml_dtypes.bfloat16)
    uses_bf16 = any(np.asarray(v).dtype == bf16 for v in feed.values()) or any(
        o.type == "tensor(bfloat16)" for o in session.get_outputs() if o.name in names
    )
    if not uses_bf16:
        return session.run(names, dict(feed))
    binding = session.io_binding()
    for name, value in feed.items():
        array = np.ascontiguousarray(value)
        if array.dtype == bf16:
            ort_value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
                array.view(np.uint16), onnx_element_type=onnx.TensorProto.BFLOAT16
            )
        else:
            ort_value = ort.OrtValue.ortvalue_from_numpy(array)
        binding.bind_ortvalue_input(name, ort_value)
    for name in names:
        binding.bind_output(name, "cpu")
    session.run_with_iobinding(binding)
    return [_ort_value_to_numpy(value) for value in binding.get_outputs()]


def _ort_value_to_numpy(value: ort.OrtValue) -> np.ndarray:
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    shape = tuple(value.shape())
    count = math.prod(shape)
    if count == 0:
        return np.empty(shape, ml_dtypes.bfloat16)
    raw = (ctypes.c_uint16 * count).from_address(value.data_ptr())  # bound to CPU above
    return np.frombuffer(raw, np.uint16).copy().view(ml_dtypes.bfloat16).reshape(shape)


def _run(
    session: ort.InferenceSession,
    names: list[str] | None,
    feed: Mapping[str, np.ndarray],
    role: str,
    label: str,
) -> list[np.ndarray]:
    try:
        return _session_run(session, names, feed)
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        raise InputError(
            f"onnxruntime failed running the {role} on {label}: {_one_line(exc)}"
        ) from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _model_path(path: str | os.PathLike[str], role: str) -> Path:
    resolved = Path(path)
    if not resolved.is_file():
        raise ModelLoadError(f"{role} model not found: {resolved}")
    return resolved


def _load_proto(path: Path, role: str) -> onnx.ModelProto:
    """The model without its weights: large payloads stay in their files (bnfold's lazy loader
    turns big single files into references to themselves), which onnxruntime reads through
    ``session.model_external_initializers_file_folder_path``."""
    from .modelio import load_model

    try:
        return load_model(path).proto
    except ModelLoadError as exc:
        raise ModelLoadError(f"cannot read the {role} model: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The comparison


def validate_models(
    original: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    *,
    folds: Sequence[FoldProbe] = (),
    provider: str = "auto",
    reference_provider: str | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    samples: int = 1,
    inputs: str | os.PathLike[str] | None = None,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    fold_atol: float | None = None,
    fold_rtol: float | None = None,
) -> ValidationResult:
    """Run both models on the same inputs and measure, per output and per fold, how far apart
    they are.

    ``atol``/``rtol`` override ``OUTPUT_TOLERANCES`` for float outputs (integer and bool outputs
    stay exact); ``fold_atol``/``fold_rtol`` override ``FOLD_TOLERANCES``. With ``inputs`` (a
    .npz file, or a folder of .npz/.npy files, one sample each) ``samples`` is not used.
    Bad input of any kind raises InputError (ModelLoadError for unreadable models).
    """
    original_path = _model_path(original, "original")
    candidate_path = _model_path(candidate, "candidate")
    shapes = dict(shapes or {})
    _check_arguments(samples, folds, atol=atol, rtol=rtol, fold_atol=fold_atol, fold_rtol=fold_rtol)

    notes: list[str] = []
    candidate_providers, note = resolve_provider(provider)
    if note:
        notes.append(note)
    reference_providers = candidate_providers
    if reference_provider is not None:
        reference_providers, note = resolve_provider(reference_provider)
        if note and note not in notes:
            notes.append(note)

    checker: _FoldChecker | None = None
    original_source: Path | bytes = original_path
    added: list[str] = []  # tensors exposed as extra outputs of the original
    if folds:
        original_proto = _load_proto(original_path, "original")
        checker = _FoldChecker(
            folds,
            original_proto,
            _load_proto(candidate_path, "candidate"),
            candidate_providers,
            candidate_path.parent,
        )
        added = _instrument(original_proto, checker.needed_from_original)
        if added:
            original_source = original_proto.SerializeToString()
        del original_proto
    original_session = _open_session(
        original_source,
        reference_providers,
        f"original model {original_path}",
        original_path.parent,
    )
    del original_source
    candidate_session = _open_session(
        candidate_path, candidate_providers, f"candidate model {candidate_path}"
    )

    original_outputs = [
        s for s in _signature(original_session.get_outputs()) if s.name not in added
    ]
    model_inputs = _check_signatures(
        (_signature(original_session.get_inputs()), original_outputs),
        (_signature(candidate_session.get_inputs()), _signature(candidate_session.get_outputs())),
    )
    _check_shape_names(shapes, model_inputs)
    for sig in original_outputs:
        if not sig.type.startswith("tensor("):
            raise InputError(
                f"output {sig.name!r} is {sig.type}; bnfold compares tensor outputs only"
            )
    sample_count, feeds = _sample_feeds(inputs, samples, seed, model_inputs, shapes, notes)

    output_names = [s.name for s in original_outputs]
    reference_names = output_names + added
    output_stats = {name: _Stats() for name in output_names}
    output_tolerances = {s.name: _output_tolerance(s.dtype, atol, rtol) for s in original_outputs}
    for label, feed in feeds:
        logger.debug("running %s", label)
        reference = dict(
            zip(
                reference_names,
                _run(original_session, reference_names, feed, "original model", label),
                strict=True,
            )
        )
        actual = _run(candidate_session, output_names, feed, "candidate model", label)
        for name, value in zip(output_names, actual, strict=True):
            output_stats[name].add(
                np.asarray(value), np.asarray(reference[name]), *output_tolerances[name]
            )
        if checker is not None:
            checker.observe({**feed, **reference})
    del original_session, candidate_session

    outputs = tuple(
        _output_comparison(s.name, s.dtype, output_stats[s.name], *output_tolerances[s.name], notes)
        for s in original_outputs
    )
    fold_list = checker.results(fold_atol, fold_rtol) if checker else []
    return ValidationResult(
        provider=provider_label(candidate_providers),
        reference_provider=provider_label(reference_providers),
        seed=seed,
        samples=sample_count,
        outputs=outputs,
        folds=tuple(fold_list),
        passed=_verdict(outputs, fold_list, notes, strict=atol is not None or rtol is not None),
        notes=tuple(notes),
    )


def _check_arguments(samples: int, folds: Sequence[FoldProbe], **tolerances: float | None) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples must be a positive integer, not {samples!r}")
    for label, value in tolerances.items():
        if value is not None and not (
            isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)
        ):
            raise InputError(f"{label} must be a finite number >= 0, not {value!r}")
    for probe in folds:
        if not isinstance(probe, FoldProbe):
            raise TypeError(f"folds must hold FoldProbe objects, not {type(probe).__name__}")


def _sample_feeds(
    inputs: str | os.PathLike[str] | None,
    samples: int,
    seed: int,
    model_inputs: list[_TensorSig],
    shapes: Mapping[str, Sequence[int]],
    notes: list[str],
) -> tuple[int, Iterator[tuple[str, dict[str, np.ndarray]]]]:
    """How many samples there are, and a lazy iterator of (label, feed)."""
    if inputs is not None:
        files = _sample_files(Path(inputs), model_inputs)
        if samples != 1:
            notes.append(f"samples={samples} ignored: {len(files)} sample(s) read from {inputs}")
        return len(files), ((path.name, _load_sample(path, model_inputs, shapes)) for path in files)
    concrete, shape_notes = _concrete_shapes(model_inputs, shapes)
    notes.extend(shape_notes)
    for sig in model_inputs:  # fail before running anything
        _random_array(np.random.default_rng(0), sig, (0,) * len(concrete[sig.name]))
    rng = np.random.default_rng(seed)
    return samples, (
        (
            f"random sample {number}",
            {s.name: _random_array(rng, s, concrete[s.name]) for s in model_inputs},
        )
        for number in range(samples)
    )


def _verdict(
    outputs: Sequence[OutputComparison], folds: Sequence[FoldComparison], notes: list[str],
    *, strict: bool = False,
) -> bool:
    """Passed unless an output is out of tolerance or an attributed fold fails; adds the notes
    that explain the verdict. With default tolerances (not ``strict``), outputs beyond tolerance
    pass as amplified rounding when every fold passed on its own and each output's cosine
    similarity stays at or above ``AMPLIFIED_MIN_COSINE``."""
    for fold in folds:
        if fold.passed is None:
            notes.append(
                f"fold of {fold.batchnorm!r} into {fold.into!r} not attributed: {fold.note}"
            )
    failed = [f for f in folds if f.passed is False]
    if failed:
        names = ", ".join(repr(f.batchnorm) for f in failed[:5]) + (
            " ..." if len(failed) > 5 else ""
        )
        notes.append(f"{len(failed)} of {len(folds)} fold(s) fail on their own: {names}")
    outputs_passed = all(o.passed for o in outputs)
    if folds and all(f.passed is True for f in folds) and not outputs_passed:
        amplified = not strict and all(
            o.passed or (o.cosine is not None and o.cosine >= AMPLIFIED_MIN_COSINE) for o in outputs)
        notes.append(AMPLIFIED_NOTE if amplified else ROUNDING_NOTE)
        return amplified
    return outputs_passed and not failed


class _FoldChecker:
    """Per-fold attribution over all samples.

    Plans each probe's slice of the candidate, names the tensors the original must expose
    (``needed_from_original``), runs the probe model on each sample's original values and turns
    the statistics into FoldComparisons.
    """

    def __init__(
        self,
        folds: Sequence[FoldProbe],
        original: onnx.ModelProto,
        candidate: onnx.ModelProto,
        providers: list[Any],
        candidate_folder: Path,
    ) -> None:
        self.providers = providers
        self.candidate_folder = candidate_folder
        self.results_by_key: dict[int, FoldComparison] = {}
        self.slices: list[tuple[int, _Slice]] = []
        original_index = _GraphIndex(original.graph)
        candidate_index = _GraphIndex(candidate.graph)
        for key, probe in enumerate(folds):
            planned = _plan_slice(probe, original_index, candidate_index)
            if isinstance(planned, str):
                self.results_by_key[key] = _unattributed(probe, planned)
            else:
                self.slices.append((key, planned))
        needed: dict[str, None] = {}  # ordered set
        for _, slice_ in self.slices:
            needed.update((n, None) for n in slice_.frontier if n not in original_index.inputs)
            needed[slice_.probe.tensor] = None
        self.needed_from_original = list(needed)
        self.kit = _ProbeKit(candidate, self.slices) if self.slices else None
        self.stats = {key: _Stats() for key, _ in self.slices}
        self.dtypes: dict[int, str] = {}
        self.sessions: list[tuple[ort.InferenceSession | None, list[tuple[int, _Slice]]]] | None = (
            None
        )

    def observe(self, values: Mapping[str, np.ndarray]) -> None:
        """Run every slice on one sample's original values (graph inputs and exposed tensors)."""
        if self.kit is None:
            return
        if self.sessions is None:
            dtypes = {name: np.asarray(value).dtype for name, value in values.items()}
            self.sessions = _open_probe_sessions(
                self.kit, dtypes, self.providers, self.candidate_folder, self.results_by_key
            )
        for position, (session, members) in enumerate(self.sessions):
            if session is None:
                continue
            feed = {
                _probe_prefix(key) + name: values[name]
                for key, slice_ in members
                for name in slice_.frontier
            }
            names = [_probe_prefix(key) + slice_.probe.tensor for key, slice_ in members]
            try:
                results = _session_run(session, names, feed)
            except Exception as exc:  # onnxruntime raises several unrelated exception types
                reason = (
                    "onnxruntime failed running the fold's slice of the candidate: "
                    + _one_line(exc)
                )
                for key, slice_ in members:
                    self.results_by_key[key] = _unattributed(slice_.probe, reason)
                self.sessions[position] = (None, members)
                continue
            for (key, slice_), value in zip(members, results, strict=True):
                expected = np.asarray(values[slice_.probe.tensor])
                self.dtypes[key] = expected.dtype.name
                self.stats[key].add(np.asarray(value), expected, 0.0, 0.0)

    def results(self, fold_atol: float | None, fold_rtol: float | None) -> list[FoldComparison]:
        """Every probe's comparison, worst first: failed, not attributed, passed; each group by
        decreasing max_abs / max|reference|."""
        self.sessions = None  # release onnxruntime
        results = dict(self.results_by_key)
        for key, slice_ in self.slices:
            if key not in results:
                results[key] = _fold_comparison(
                    slice_.probe, self.stats[key], self.dtypes[key], fold_atol, fold_rtol
                )
        return sorted(results.values(), key=_fold_sort_key)


def _open_probe_sessions(
    kit: _ProbeKit,
    dtypes: Mapping[str, np.dtype],
    providers: list[Any],
    folder: Path,
    fold_results: dict[int, FoldComparison],
) -> list[tuple[ort.InferenceSession | None, list[tuple[int, _Slice]]]]:
    """One session for all slices; if onnxruntime refuses it, one per slice, so a slice it
    cannot run is reported as not attributed instead of sinking the others."""
    members = list(kit.slices.items())
    try:
        model = kit.model(list(kit.slices), dtypes)
        return [
            (
                _open_session(model.SerializeToString(), providers, "fold probe model", folder),
                members,
            )
        ]
    except ModelLoadError as exc:
        logger.debug("the combined fold probe model failed (%s); trying slices one by one", exc)
    sessions: list[tuple[ort.InferenceSession | None, list[tuple[int, _Slice]]]] = []
    for key, slice_ in members:
        try:
            model = kit.model([key], dtypes)
            session = _open_session(
                model.SerializeToString(), providers, "fold's slice of the candidate", folder
            )
        except ModelLoadError as exc:
            fold_results[key] = _unattributed(slice_.probe, str(exc))
            continue
        sessions.append((session, [(key, slice_)]))
    return sessions


def _unattributed(probe: FoldProbe, reason: str) -> FoldComparison:
    return FoldComparison(
        probe.batchnorm, probe.into, None, None, None, reason, tensor=probe.tensor
    )


def _fold_comparison(
    probe: FoldProbe, stats: _Stats, dtype: str, fold_atol: float | None, fold_rtol: float | None
) -> FoldComparison:
    if stats.shape_mismatch is not None:
        return FoldComparison(
            probe.batchnorm,
            probe.into,
            None,
            None,
            False,
            f"tensor {probe.tensor!r} has {stats.shape_mismatch}",
            tensor=probe.tensor,
        )
    if not stats.numeric:
        return _unattributed(probe, f"tensor {probe.tensor!r} is not numeric")
    if dtype not in FOLD_TOLERANCES and fold_atol is None and fold_rtol is None:
        note = f"tensor {probe.tensor!r} is {dtype}: compared exactly"
    else:
        note = None
    tol_atol, tol_rtol = _fold_tolerance(dtype, fold_atol, fold_rtol)
    threshold = tol_atol + tol_rtol * stats.reference_max
    passed = math.isfinite(stats.max_abs) and stats.max_abs <= threshold
    return FoldComparison(
        probe.batchnorm,
        probe.into,
        stats.max_abs,
        stats.max_rel,
        passed,
        note,
        tensor=probe.tensor,
        reference_max=stats.reference_max,
        atol=tol_atol,
        rtol=tol_rtol,
    )


def _fold_sort_key(fold: FoldComparison) -> tuple[int, float]:
    rank = {False: 0, None: 1, True: 2}[fold.passed]
    error = fold.normalized_error
    return rank, -(error if error is not None else 0.0)


def _output_comparison(
    name: str, dtype: str, stats: _Stats, tol_atol: float, tol_rtol: float, notes: list[str]
) -> OutputComparison:
    if stats.shape_mismatch is not None:
        notes.append(f"output {name!r} has {stats.shape_mismatch}")
    if not stats.numeric:
        return OutputComparison(
            name,
            dtype,
            None,
            None,
            None,
            None,
            stats.mismatches,
            stats.total,
            tol_atol,
            tol_rtol,
            stats.shape_mismatch is None and stats.mismatches == 0,
        )
    return OutputComparison(
        name=name,
        dtype=dtype,
        max_abs=stats.max_abs,
        max_rel=stats.max_rel,
        mean_abs=stats.mean_abs,
        cosine=stats.cosine,
        mismatches=stats.mismatches,
        total=stats.total,
        atol=tol_atol,
        rtol=tol_rtol,
        passed=stats.mismatches == 0,
    )
