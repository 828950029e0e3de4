"""The ``bnfold`` command line. Only this module picks exit codes and prints.

Exit codes: 0 success / clean, 1 findings at or above ``--fail-on`` (inspect, check) or
validation failed (fuse, validate), 2 bad input or usage.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import BnfoldError, InputError

app = typer.Typer(
    name="bnfold",
    help="Audit and fold BatchNormalization in ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(soft_wrap=False)
if not stdout.is_terminal:  # logs and pipes: wide enough that tables stay readable
    stdout = Console(soft_wrap=False, width=160)
stderr = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


class Provider(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@contextlib.contextmanager
def user_errors():
    """Turn bnfold's input errors into one line on stderr and exit status 2."""
    try:
        yield
    except InputError as exc:
        print(f"bnfold: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except BnfoldError as exc:  # deliberate failures that are not the user's fault
        print(f"bnfold: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _version(value: bool) -> None:
    if value:
        print(f"bnfold {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="bnfold: %(levelname)s: %(message)s", stream=sys.stderr)


def exceeds(worst: str | None, fail_on: FailOn) -> bool:
    from .audit import SEVERITY_RANK

    if fail_on is FailOn.never or worst is None:
        return False
    return SEVERITY_RANK[worst] >= SEVERITY_RANK[fail_on.value]


@app.command()
def inspect(
    models: Annotated[list[Path], typer.Argument(help="ONNX model files.", show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    fail_on: Annotated[FailOn, typer.Option(help="Exit 1 when a finding at or above this severity exists.")] = FailOn.error,
    fold_overridable: Annotated[bool, typer.Option(help="Treat initializers that are also graph inputs as constants.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes for several models.")] = 1,
) -> None:
    """Report every BatchNormalization: statistics, foldability and findings."""
    from . import report
    from .batch import inspect_many

    with user_errors():
        reports = inspect_many(models, fold_overridable=fold_overridable, jobs=jobs,
                               progress=stderr if (len(models) > 1 and stderr.is_terminal) else None)
    if format is OutputFormat.json:
        print(report.dumps(report.inspect_document(reports)))
    elif format is OutputFormat.markdown:
        print(report.inspect_markdown(reports))
    else:
        report.render_inspect(reports, stdout)
    worst = [r.worst_severity() for r in reports]
    if any(exceeds(w, fail_on) for w in worst):
        raise typer.Exit(1)


def _parse_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    if not specs:
        return None
    from .validate import parse_shape_spec

    return dict(parse_shape_spec(s) for s in specs)


@app.command()
def fuse(
    model: Annotated[Path, typer.Argument(help="The ONNX model to fold.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (default: <stem>.folded.onnx).")] = None,
    in_place: Annotated[bool, typer.Option(help="Overwrite the input model.")] = False,
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Check the folded model against the original before writing it.")] = True,
    decompose: Annotated[bool, typer.Option(help="Rewrite each BN that cannot be folded into Mul+Add.")] = False,
    fold_overridable: Annotated[bool, typer.Option(help="Bake in initializers that are also graph inputs.")] = False,
    external_data: Annotated[bool, typer.Option(help="Write tensors to <output>.data (automatic above 2 GiB).")] = False,
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = OutputFormat.table,
    provider: Annotated[Provider, typer.Option(help="Validation provider.")] = Provider.auto,
    reference_provider: Annotated[Optional[Provider], typer.Option(help="Provider for the original model.")] = None,
    shape: Annotated[Optional[list[str]], typer.Option(help="Input shape, name=1x3x224x224 (repeatable).")] = None,
    samples: Annotated[int, typer.Option(min=1, help="Random input samples.")] = 1,
    inputs: Annotated[Optional[Path], typer.Option(help="Inputs: a .npz file or a folder of .npz/.npy files.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for inputs.")] = 0,
    atol: Annotated[Optional[float], typer.Option(help="Absolute tolerance (default per dtype).")] = None,
    rtol: Annotated[Optional[float], typer.Option(help="Relative tolerance (default per dtype).")] = None,
) -> None:
    """Fold every exactly-foldable BatchNormalization and explain every one left."""
    from . import report
    from .fuse import ValidationSettings, fuse_model

    with user_errors():
        settings = ValidationSettings(
            provider=provider.value, reference_provider=reference_provider.value if reference_provider else None,
            shapes=_parse_shapes(shape), samples=samples, inputs=str(inputs) if inputs else None,
            seed=seed, atol=atol, rtol=rtol,
        )
        result = fuse_model(model, output, in_place=in_place, validate=validate, validation=settings,
                            decompose=decompose, fold_overridable=fold_overridable,
                            external_data=external_data)
    if format is OutputFormat.json:
        print(report.dumps(result.to_dict()))
    elif format is OutputFormat.markdown:
        print(report.fuse_markdown(result))
    else:
        report.render_fuse(result, stdout)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def validate(
    original: Annotated[Path, typer.Argument(help="The reference model.", show_default=False)],
    candidate: Annotated[Path, typer.Argument(help="The model to compare with it.", show_default=False)],
    provider: Annotated[Provider, typer.Option(help="Execution provider for the candidate (and the original unless --reference-provider).")] = Provider.auto,
    reference_provider: Annotated[Optional[Provider], typer.Option(help="Provider for the original model.")] = None,
    shape: Annotated[Optional[list[str]], typer.Option(help="Input shape, name=1x3x224x224 (repeatable).")] = None,
    samples: Annotated[int, typer.Option(min=1, help="Random input samples.")] = 1,
    inputs: Annotated[Optional[Path], typer.Option(help="Inputs: a .npz file or a folder of .npz/.npy files.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for inputs.")] = 0,
    atol: Annotated[Optional[float], typer.Option(help="Absolute tolerance (default per dtype).")] = None,
    rtol: Annotated[Optional[float], typer.Option(help="Relative tolerance (default per dtype).")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = OutputFormat.table,
) -> None:
    """Run both models in onnxruntime on the same inputs and compare their outputs."""
    from .fuse import fold_probes_between
    from .report_validation import render_validation, validation_markdown
    from .validate import validate_models

    with user_errors():
        probes = fold_probes_between(original, candidate)
        result = validate_models(
            original, candidate, folds=probes, provider=provider.value,
            reference_provider=reference_provider.value if reference_provider else None,
            shapes=_parse_shapes(shape), samples=samples, inputs=str(inputs) if inputs else None,
            seed=seed, atol=atol, rtol=rtol,
        )
    if format is OutputFormat.json:
        from .report import dumps

        print(dumps(result.to_dict()))
    elif format is OutputFormat.markdown:
        print(validation_markdown(result))
    else:
        render_validation(result, stdout)
    if not result.passed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
