"""``check``: the CI gate. Audit and plan every model (nothing is written) and turn the reports
into problems and a verdict.

A *problem* is a finding that is not ignored, or, with ``require_folded``, a BN the planner can
fold (code ``not-folded``, severity error: the export pipeline forgot to fold it). A model fails
when one of its problems is at or above ``fail_on`` or is a ``not-folded`` problem; problems
below the threshold are reported but do not fail. Ignored problems are kept apart and counted.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import audit
from .config import NOT_FOLDED, Config, load_config
from .errors import InputError
from .inspection import SCHEMA_VERSION, BatchNormReport, ModelReport, inspect_model

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Problem:
    """One reportable issue with one BatchNormalization."""

    batchnorm: str
    graph: str
    code: str
    severity: str
    message: str
    channels: tuple[int, ...] = ()
    blocking: bool = False  # counts toward the verdict

    def to_dict(self) -> dict:
        return {"batchnorm": self.batchnorm, "graph": self.graph, "code": self.code,
                "severity": self.severity, "message": self.message,
                "channels": list(self.channels), "blocking": self.blocking}


@dataclass(frozen=True)
class ModelCheck:
    """The verdict for one model."""

    path: str
    report: ModelReport
    problems: tuple[Problem, ...]
    ignored: tuple[Problem, ...]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(p.blocking for p in self.problems)

    @property
    def audit_failures(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.blocking and p.code != NOT_FOLDED)

    @property
    def not_folded(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.code == NOT_FOLDED)

    def to_dict(self) -> dict:
        return {**self.report.to_dict(), "passed": self.passed,
                "problems": [p.to_dict() for p in self.problems], "ignored": len(self.ignored)}


@dataclass(frozen=True)
class CheckResult:
    """Every model's verdict and the settings that produced them."""

    models: tuple[ModelCheck, ...]
    fail_on: str
    require_folded: bool
    config: Config

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    @property
    def problems(self) -> list[tuple[ModelCheck, Problem]]:
        return [(m, p) for m in self.models for p in m.problems]

    @property
    def summary(self) -> dict[str, int]:
        problems = [p for m in self.models for p in m.problems]
        return {
            "models": len(self.models),
            "failed_models": sum(1 for m in self.models if not m.passed),
            "batchnorms": sum(len(m.report.batchnorms) for m in self.models),
            "errors": sum(1 for p in problems if p.severity == audit.ERROR),
            "warnings": sum(1 for p in problems if p.severity == audit.WARNING),
            "infos": sum(1 for p in problems if p.severity == audit.INFO),
            "not_folded": sum(1 for p in problems if p.code == NOT_FOLDED),
            "ignored": sum(len(m.ignored) for m in self.models),
        }

    def to_dict(self) -> dict:
        """The inspect document (schema version 1) plus the verdict."""
        return {
            "schema_version": SCHEMA_VERSION,
            "passed": self.passed,
            "fail_on": self.fail_on,
            "require_folded": self.require_folded,
            "ignore": list(self.config.ignore),
            "summary": self.summary,
            "models": [m.to_dict() for m in self.models],
        }


def _not_folded(bn: BatchNormReport) -> Problem:
    op, name = bn.fold.target
    where = "its producer" if bn.fold.direction == "backward" else "its consumer"
    return Problem(bn.name, bn.graph, NOT_FOLDED, audit.ERROR,
                   f"can be folded {bn.fold.direction} into {op} '{name}' ({where}) but was not; "
                   "fold it with `bnfold fuse` or in the export pipeline", (), True)


def problems_of(report: ModelReport, *, fail_on: str, require_folded: bool,
                ignored_codes: Iterable[str] = ()) -> tuple[list[Problem], list[Problem]]:
    """``(problems, ignored)`` for one report, in BN order (findings, then not-folded)."""
    ignored_codes = frozenset(ignored_codes)
    threshold = None if fail_on == "never" else audit.SEVERITY_RANK[fail_on]
    kept: list[Problem] = []
    ignored: list[Problem] = []
    for bn in report.batchnorms:
        candidates = [
            Problem(bn.name, bn.graph, f.code, f.severity, f.message, f.channels,
                    threshold is not None and audit.SEVERITY_RANK[f.severity] >= threshold)
            for f in bn.findings
        ]
        if require_folded and bn.fold.foldable:
            candidates.append(_not_folded(bn))
        for p in candidates:
            (ignored if p.code in ignored_codes else kept).append(p)
    return kept, ignored


def expand_paths(specs: Iterable[str | os.PathLike]) -> list[Path]:
    """Model files named by ``specs``: files as given, folders searched recursively for
    ``*.onnx`` (sorted; hidden folders skipped), glob patterns expanded (``**`` recurses).

    Raises :class:`InputError` for a path that does not exist, a glob that matches nothing and a
    folder with no models. Duplicates are dropped, first occurrence kept.
    """
    out: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            out.append(path)

    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if path.is_dir():
            found = _models_under(path)
            if not found:
                raise InputError(f"{path}: no .onnx files in this folder")
            for p in found:
                add(p)
        elif path.exists():
            add(path)
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            files: list[Path] = []
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    files.extend(_models_under(mp))
                elif mp.is_file():
                    files.append(mp)
            if not files:
                raise InputError(f"{text}: no files match this pattern")
            for p in files:
                add(p)
        else:
            raise InputError(f"{path}: no such file or directory")
    return out


def _models_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / f for f in filenames if f.endswith(".onnx"))
    return sorted(found)


def _inspect_timed(path: Path) -> tuple[ModelReport, float]:
    start = time.perf_counter()
    report = inspect_model(path)
    return report, time.perf_counter() - start


def check(paths: str | os.PathLike | Sequence[str | os.PathLike], *, fail_on: str | None = None,
          require_folded: bool | None = None, ignore: Iterable[str] | None = None,
          per_path_ignores: Mapping[str, Iterable[str]] | None = None, jobs: int = 1,
          config: Config | str | os.PathLike | None = None, progress=None) -> CheckResult:
    """Audit and plan the models at ``paths`` (files, folders, globs) and decide pass/fail.

    Settings come from ``config`` (a :class:`~bnfold.config.Config` or a config file path; no
    discovery here) and are overridden by the keyword arguments that are not None; without
    either, ``fail_on="error"``, ``require_folded=False``, nothing ignored. ``per_path_ignores``
    given here is relative to the working directory. ``progress`` is a rich Console for a
    progress bar (the CLI passes one on terminals). Raises :class:`~bnfold.InputError` for bad
    paths, models that cannot be read and invalid settings; never prints.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        config = load_config(config)
    config = config.override(fail_on=fail_on, require_folded=require_folded, ignore=ignore,
                             per_path_ignores=per_path_ignores, source="argument")
    files = expand_paths(paths)
    if not files:
        raise InputError("no models given")
    from .batch import run_many

    timed = run_many(_inspect_timed, files, jobs=jobs, progress=progress, label="checking")
    models = []
    for path, (report, seconds) in zip(files, timed):
        kept, ignored = problems_of(report, fail_on=config.fail_on,
                                    require_folded=config.require_folded,
                                    ignored_codes=config.ignored_codes(path))
        models.append(ModelCheck(os.fspath(path), report, tuple(kept), tuple(ignored), seconds))
    return CheckResult(tuple(models), config.fail_on, config.require_folded, config)


__all__ = ["CheckResult", "ModelCheck", "Problem", "check", "expand_paths", "problems_of"]
