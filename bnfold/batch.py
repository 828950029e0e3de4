"""Running one operation over many models, in worker processes when asked (``-j``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .inspection import ModelReport, inspect_model

T = TypeVar("T")


def run_many(func: Callable[[Path], T], paths: Sequence[Path], *, jobs: int = 1,
             progress: Console | None = None, label: str = "models") -> list[T]:
    """``[func(p) for p in paths]``, in order, with ``jobs`` processes and a progress bar.

    The first exception raised by any call propagates (remaining work is cancelled).
    """
    paths = list(paths)
    jobs = max(1, min(jobs, len(paths), os.cpu_count() or 1))
    bar = None
    if progress is not None:
        bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=progress, transient=True)
    results: list[T] = []
    with bar if bar is not None else _nothing():
        task = bar.add_task(label, total=len(paths)) if bar is not None else None
        if jobs == 1:
            for p in paths:
                results.append(func(p))
                if bar is not None:
                    bar.advance(task)
            return results
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(func, p) for p in paths]
            for fut in futures:
                results.append(fut.result())
                if bar is not None:
                    bar.advance(task)
    return results


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _inspect_one(path: Path, fold_overridable: bool) -> ModelReport:
    return inspect_model(path, fold_overridable=fold_overridable)


def inspect_many(paths: Sequence[Path], *, fold_overridable: bool = False, jobs: int = 1,
                 progress: Console | None = None) -> list[ModelReport]:
    from functools import partial

    return run_many(partial(_inspect_one, fold_overridable=fold_overridable), paths, jobs=jobs,
                    progress=progress, label="inspecting")
