"""How independent per-node work is executed: the one place that decides "where fits run".

Models never start processes themselves; they split their work into items and call
``executor.map(fn, items)``. :class:`LocalExecutor` runs the items in this process (``n_jobs=1``)
or in joblib/loky worker processes; a distributed executor (Dask, Spark) only has to provide the
same members (``n_jobs``, ``progress``, ``partition``, ``map``). Optionally an executor may
define ``run_statsforecast(sf, df, h, level) -> (forecast_df, fitted_df)`` to run
statsforecast's single batch call on its engine (see ``htsforecast.models._statsforecast``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from htsforecast._progress import progress_bar

__all__ = ["Executor", "LocalExecutor", "resolve_n_jobs"]

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Executor(Protocol):
    """Runs independent work items, possibly in parallel.

    Attributes
    ----------
    n_jobs : int
        Degree of parallelism (>= 1); models with their own parallelism (statsforecast) use it.
    progress : bool
        Whether to show a progress bar.
    """

    @property
    def n_jobs(self) -> int:
        """Degree of parallelism (>= 1)."""
        ...

    @property
    def progress(self) -> bool:
        """Whether to show a progress bar."""
        ...

    def partition(self, n: int) -> list[np.ndarray]:
        """Split positions ``0..n-1`` into contiguous chunks, one work item each."""
        ...

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        sizes: Sequence[int] | None = None,
        desc: str = "",
    ) -> list[R]:
        """Return ``[fn(item) for item in items]``; ``sizes`` (series per item) drive the bar."""
        ...


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None``/1 -> 1, ``-1`` -> all cores, ``-k`` -> all but k-1 cores, ``k`` -> k."""
    cores = os.cpu_count() or 1
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max(1, cores + 1 + int(n_jobs))
    return int(n_jobs)


@dataclass(frozen=True)
class LocalExecutor:
    """Run work items here (``n_jobs=1``) or in ``n_jobs`` local worker processes (joblib/loky).

    Worker processes are reused across calls (loky's reusable executor), so repeated fits (e.g.
    cross-validation windows) pay the start-up cost once. Work items are pickled with cloudpickle,
    so models and callbacks defined in a notebook work too.

    Parameters
    ----------
    n_jobs : int
        Number of processes (resolved: ``-1`` means all cores).
    progress : bool
        Show a tqdm bar counting fitted series.
    chunks_per_job : int
        Work items per process; more gives smoother load balancing and progress, fewer less
        overhead.
    """

    n_jobs: int = 1
    progress: bool = False
    chunks_per_job: int = 4

    def partition(self, n: int) -> list[np.ndarray]:
        """Contiguous chunks: one when ``n_jobs == 1``, else ``n_jobs * chunks_per_job``."""
        if n == 0:
            return []
        k = 1 if self.n_jobs == 1 else min(n, self.n_jobs * self.chunks_per_job)
        if k == 1 and self.progress:
            k = min(n, 20)  # a few chunks so the bar moves; in-process chunks cost nothing
        return [c for c in np.array_split(np.arange(n), k) if len(c)]

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        sizes: Sequence[int] | None = None,
        desc: str = "",
    ) -> list[R]:
        """Apply ``fn`` to every item, in order; in worker processes when ``n_jobs > 1``."""
        sizes = list(sizes) if sizes is not None else [1] * len(items)
        bar = progress_bar(sum(sizes), desc, self.progress)
        try:
            if self.n_jobs == 1 or len(items) <= 1:
                out = []
                for item, size in zip(items, sizes):
                    out.append(fn(item))
                    bar.update(size)
                return out
            return self._parallel(fn, items, sizes, bar)
        finally:
            bar.close()

    def _parallel(
        self, fn: Callable[[T], R], items: Sequence[T], sizes: list[int], bar: Any
    ) -> list[R]:
        from joblib import Parallel, delayed

        n_workers = min(self.n_jobs, len(items))
        runner = Parallel(n_jobs=n_workers, backend="loky", return_as="generator")
        out = []
        for result, size in zip(runner(delayed(fn)(item) for item in items), sizes):
            out.append(result)
            bar.update(size)
        return out
