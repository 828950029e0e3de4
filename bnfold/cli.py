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


# Validation options shared by ``fuse`` and ``validate``.
ProviderOption = Annotated[Optional[Provider], typer.Option(help="Execution provider for validation (auto: CUDA when a device answers) [default: [tool.bnfold] validation.provider, else auto].", show_default=False)]
ReferenceProviderOption = Annotated[Optional[Provider], typer.Option(help="Provider for the original model (default: --provider).")]
ShapeOption = Annotated[Optional[list[str]], typer.Option(help="Input shape, name=1x3x224x224 (repeatable).")]
SamplesOption = Annotated[int, typer.Option(min=1, help="Random input samples.")]
InputsOption = Annotated[Optional[Path], typer.Option(help="Inputs: a .npz file or a folder of .npz/.npy files.")]
SeedOption = Annotated[int, typer.Option(help="Random seed for inputs.")]
AtolOption = Annotated[Optional[float], typer.Option(help="Absolute tolerance (default: [tool.bnfold] validation.atol, else per dtype).")]
RtolOption = Annotated[Optional[float], typer.Option(help="Relative tolerance (default: [tool.bnfold] validation.rtol, else per dtype).")]
FoldAtolOption = Annotated[Optional[float], typer.Option(help="Per-fold absolute tolerance (default per dtype).")]
FoldRtolOption = Annotated[Optional[float], typer.Option(help="Per-fold tolerance relative to max|reference| (default per dtype).")]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]


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
    format: FormatOption = OutputFormat.table,
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


def _validation_defaults(provider: Provider | None, atol: float | None,
                         rtol: float | None) -> tuple[str, float | None, float | None]:
    """Provider and tolerances: the command line, else the discovered [tool.bnfold]
    validation table, else the built-in defaults."""
    from .config import resolve_config

    configured = resolve_config().validation
    return (provider.value if provider is not None else configured.provider,
            atol if atol is not None else configured.atol,
            rtol if rtol is not None else configured.rtol)


def _parse_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    if not specs:
        return None
    from .validate import parse_shape_spec

    return dict(parse_shape_spec(s) for s in specs)


@app.command()
def fuse(
    models: Annotated[list[Path], typer.Argument(help="ONNX models to fold.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file for a single model (default: <stem>.folded.onnx).")] = None,
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-O", help="Folder for the outputs (several models).")] = None,
    in_place: Annotated[bool, typer.Option(help="Overwrite the input model.")] = False,
    validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Check the folded model against the original before writing it.")] = True,
    decompose: Annotated[bool, typer.Option(help="Rewrite each BN that cannot be folded into Mul+Add.")] = False,
    fold_overridable: Annotated[bool, typer.Option(help="Bake in initializers that are also graph inputs.")] = False,
    external_data: Annotated[bool, typer.Option(help="Write tensors to <output>.data (automatic above 2 GiB).")] = False,
    format: FormatOption = OutputFormat.table,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes for several models.")] = 1,
    provider: ProviderOption = None,
    reference_provider: ReferenceProviderOption = None,
    shape: ShapeOption = None,
    samples: SamplesOption = 1,
    inputs: InputsOption = None,
    seed: SeedOption = 0,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    fold_atol: FoldAtolOption = None,
    fold_rtol: FoldRtolOption = None,
) -> None:
    """Fold every exactly-foldable BatchNormalization and explain every one left."""
    from functools import partial

    from . import report
    from .batch import run_many
    from .fuse import ValidationSettings, default_output

    with user_errors():
        if len(models) > 1 and output is not None:
            raise InputError("-o/--output names one file; use -O/--output-dir for several models")
        if output is not None and output_dir is not None:
            raise InputError("give either -o/--output or -O/--output-dir, not both")
        if output_dir is not None and not output_dir.is_dir():
            raise InputError(f"{output_dir}: output folder does not exist")
        if output_dir is not None and in_place:
            raise InputError("--in-place and -O/--output-dir contradict each other")
        if len({m.name for m in models}) < len(models) and output_dir is not None:
            raise InputError("two inputs share a file name; their outputs would collide in the output folder")
        provider_name, atol, rtol = _validation_defaults(provider, atol, rtol)
        settings = ValidationSettings(
            provider=provider_name, reference_provider=reference_provider.value if reference_provider else None,
            shapes=_parse_shapes(shape), samples=samples, inputs=str(inputs) if inputs else None,
            seed=seed, atol=atol, rtol=rtol, fold_atol=fold_atol, fold_rtol=fold_rtol,
        )
        targets = {m: (output if output is not None else
                       output_dir / default_output(m).name if output_dir is not None else None)
                   for m in models}
        work = partial(_fuse_one, targets=targets, in_place=in_place, validate=validate,
                       settings=settings, decompose=decompose, fold_overridable=fold_overridable,
                       external_data=external_data)
        results = run_many(work, models, jobs=jobs,
                           progress=stderr if (len(models) > 1 and stderr.is_terminal) else None,
                           label="folding")
    if format is OutputFormat.json:
        doc = results[0].to_dict() if len(results) == 1 else {"schema_version": 1, "results": [r.to_dict() for r in results]}
        print(report.dumps(doc))
    elif format is OutputFormat.markdown:
        print("\n".join(report.fuse_markdown(r) for r in results))
    else:
        for r in results:
            report.render_fuse(r, stdout)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _fuse_one(model: Path, *, targets, in_place, validate, settings, decompose, fold_overridable,
              external_data):
    from .fuse import fuse_model

    return fuse_model(model, targets[model], in_place=in_place, validate=validate, validation=settings,
                      decompose=decompose, fold_overridable=fold_overridable, external_data=external_data)


@app.command()
def validate(
    original: Annotated[Path, typer.Argument(help="The reference model.", show_default=False)],
    candidate: Annotated[Path, typer.Argument(help="The model to compare with it.", show_default=False)],
    provider: ProviderOption = None,
    reference_provider: ReferenceProviderOption = None,
    shape: ShapeOption = None,
    samples: SamplesOption = 1,
    inputs: InputsOption = None,
    seed: SeedOption = 0,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    fold_atol: FoldAtolOption = None,
    fold_rtol: FoldRtolOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Run both models in onnxruntime on the same inputs and compare their outputs."""
    from .fuse import fold_probes_between
    from .report_validation import render_validation, validation_markdown
    from .validate import validate_models

    with user_errors():
        provider_name, atol, rtol = _validation_defaults(provider, atol, rtol)
        probes = fold_probes_between(original, candidate)
        result = validate_models(
            original, candidate, folds=probes, provider=provider_name,
            reference_provider=reference_provider.value if reference_provider else None,
            shapes=_parse_shapes(shape), samples=samples, inputs=str(inputs) if inputs else None,
            seed=seed, atol=atol, rtol=rtol, fold_atol=fold_atol, fold_rtol=fold_rtol,
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


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    junit = "junit"
    github = "github"
    markdown = "markdown"


@app.command()
def check(
    models: Annotated[Optional[list[str]], typer.Argument(help="ONNX files, folders (searched recursively for *.onnx) or glob patterns.", show_default=False)] = None,
    format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Report format.")] = CheckFormat.text,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to this file (the terminal still gets the text report).")] = None,
    fail_on: Annotated[Optional[FailOn], typer.Option(help="Fail on findings at or above this severity [config, else error].", show_default=False)] = None,
    require_folded: Annotated[Optional[bool], typer.Option("--require-folded/--no-require-folded", help="Fail on every BatchNorm that could have been folded [config, else no].", show_default=False)] = None,
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", help="Finding code (or not-folded) to ignore; repeatable or comma-separated; replaces the config's list.", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Read settings from this file instead of discovering pyproject.toml / bnfold.toml.", show_default=False)] = None,
    no_config: Annotated[bool, typer.Option("--no-config", help="Ignore configuration files.")] = False,
    show_config: Annotated[bool, typer.Option("--show-config", help="Print the effective configuration and where each value came from, then exit.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
) -> None:
    """CI gate: audit and plan every model (nothing is written); exit 1 when the check fails."""
    import os

    from .check import check as run_check
    from .config import resolve_config
    from .report_check import config_text, github_report, render, render_text, summary_line, write_atomic

    with user_errors():
        if config is not None and no_config:
            raise InputError("--config and --no-config cannot be used together")
        codes = None if ignore is None else [c.strip() for item in ignore for c in item.split(",") if c.strip()]
        settings = resolve_config(config, discover=not no_config).override(
            fail_on=fail_on.value if fail_on is not None else None,
            require_folded=require_folded, ignore=codes)
        if show_config:
            sys.stdout.write(config_text(settings))
            raise typer.Exit(0)
        if not models:
            raise InputError("no models given (files, folders or glob patterns)")
        in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
        result = run_check(models, config=settings, jobs=jobs,
                           progress=stderr if stderr.is_terminal and not in_ci else None)
        if output is not None:
            write_atomic(output, render(result, format.value))
    if output is not None or format is CheckFormat.text:
        render_text(result, stdout)
    elif format is CheckFormat.github:
        sys.stdout.write(github_report(result))
        print(summary_line(result))
    else:
        sys.stdout.write(render(result, format.value))
    if not result.passed:
        raise typer.Exit(1)


EXIT_INTERNAL_ERROR = 3


def main() -> None:
    """Entry point: anything escaping as an unexpected exception is a bug in bnfold. It keeps
    its traceback and exits 3, so a CI gate never mistakes a crash for findings (exit 1)."""
    try:
        app()
    except Exception:  # noqa: BLE001 - the last line of defence
        import traceback

        traceback.print_exc()
        print("bnfold: internal error (a bug in bnfold; please report it with the traceback above)",
              file=sys.stderr)
        sys.exit(EXIT_INTERNAL_ERROR)


if __name__ == "__main__":
    main()
