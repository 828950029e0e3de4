"""bnfold: audit and fold BatchNormalization in ONNX models.

Library entry points (the CLI is a thin layer over these):

* :func:`inspect_model` - one :class:`ModelReport` per model: every BN, its statistics,
  findings, and whether and where it folds.
* :func:`fuse_model` - fold every exactly-foldable BN into its neighbours, validate, write.
* :func:`validate_models` - compare two models in onnxruntime, with per-fold attribution.
"""

__version__ = "0.1.0"

from .check import CheckResult, check
from .errors import BnfoldError, InputError, ModelLoadError
from .fuse import FuseResult, ValidationSettings, fuse_model
from .inspection import BatchNormReport, ModelReport, inspect_model

__all__ = [
    "BatchNormReport",
    "BnfoldError",
    "CheckResult",
    "FuseResult",
    "InputError",
    "ModelLoadError",
    "ModelReport",
    "ValidationSettings",
    "__version__",
    "check",
    "fuse_model",
    "inspect_model",
    "validate_models",
]


def __getattr__(name):
    if name == "validate_models":
        from .validate import validate_models

        return validate_models
    raise AttributeError(name)
