"""The forecaster protocol: what a model must do to be fitted at every node.

A model receives every node's history at once as a :class:`Panel` (ragged series stored
back-to-back, like statsforecast's grouped arrays) and returns a :class:`ModelOutput` of plain
arrays. :func:`htsforecast.forecast` does everything else: input validation, fallbacks for nodes
the model could not handle, sample paths for fallback nodes, and the tidy result frames.

Two ways to plug in your own model:

* implement :class:`Forecaster` (one method, ``fit_predict(panel, h, level, executor)``) when your
  library fits many series at once (vectorised or with its own parallelism), or
* subclass :class:`SeriesForecaster` and write ``fit_predict_series`` for one series; the base
  class runs it over all nodes through the executor (parallel worker processes when
  ``n_jobs > 1``) and records any exception as a failure so the node falls back.

Example
-------
>>> import numpy as np
>>> from htsforecast.models import SeriesForecast, SeriesForecaster
>>> class Drift(SeriesForecaster):
...     min_obs = 2
...     def fit_predict_series(self, uid, ds, y, h, level, future_ds):
...         slope = (y[-1] - y[0]) / (len(y) - 1)
...         fitted = np.r_[np.nan, y[:-1] + slope]
...         return SeriesForecast(mean=y[-1] + slope * np.arange(1, h + 1), fitted=fitted)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from htsforecast._exog import series_exog

if TYPE_CHECKING:
    from htsforecast.models._execution import Executor

__all__ = [
    "Forecaster",
    "ModelOutput",
    "Panel",
    "SeriesForecast",
    "SeriesForecaster",
]


@dataclass(frozen=True, eq=False)
class Panel:
    """Many series of one frequency, stored back to back (a "grouped array").

    Series ``i`` is ``ds[indptr[i]:indptr[i + 1]]`` / ``y[indptr[i]:indptr[i + 1]]``, sorted by
    date, without gaps on the ``freq`` grid and without NaN (``forecast`` validates this).

    Attributes
    ----------
    ids : ndarray of str, shape (n_series,)
    indptr : ndarray of int64, shape (n_series + 1,)
    ds : ndarray of datetime64[ns], shape (n_obs,)
    y : ndarray of float64, shape (n_obs,)
    freq : str
        pandas offset alias, e.g. ``"MS"``.
    X : ndarray of float64, shape (n_obs, k), optional
        Exogenous regressors aligned with ``y`` (columns ``exog``). A column that is NaN for
        the whole of a series is not available at that node (see ``LevelCovariate(rule=None)``).
    X_future : ndarray of float64, shape (n_series, h, k), optional
        Their values over the forecast horizon.
    exog : tuple of str
        Regressor names (empty without regressors).
    """

    ids: np.ndarray
    indptr: np.ndarray
    ds: np.ndarray
    y: np.ndarray
    freq: str
    X: np.ndarray | None = None
    X_future: np.ndarray | None = None
    exog: tuple[str, ...] = ()

    @classmethod
    def from_long(cls, df: pd.DataFrame, freq: str) -> Panel:
        """Build from a long ``unique_id, ds, y`` frame already sorted by (unique_id, ds)."""
        uid = df["unique_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]]) if len(uid) else np.array([0])
        indptr = np.r_[starts, len(uid)].astype(np.int64)
        return cls(
            ids=uid[starts].astype(object) if len(uid) else np.array([], dtype=object),
            indptr=indptr,
            ds=df["ds"].to_numpy(dtype="datetime64[ns]"),
            y=df["y"].to_numpy(dtype=np.float64),
            freq=freq,
        )

    @property
    def n_series(self) -> int:
        """Number of series."""
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """Number of observations of each series, shape (n_series,)."""
        return np.diff(self.indptr)

    def series(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Dates and values of series ``i``."""
        sl = slice(self.indptr[i], self.indptr[i + 1])
        return self.ds[sl], self.y[sl]

    def rows(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions in ``ds`` / ``y`` of the observations of series ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths[idx]
        starts = (np.cumsum(lens) - lens).astype(np.int64)
        return np.repeat(self.indptr[:-1][idx] - starts, lens) + np.arange(
            lens.sum(), dtype=np.int64
        )

    def subset(self, idx: Sequence[int] | np.ndarray) -> Panel:
        """The panel of series ``idx`` (positions), in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        indptr = np.r_[0, np.cumsum(self.lengths[idx])].astype(np.int64)
        rows = self.rows(idx)
        X = None if self.X is None else self.X[rows]
        Xf = None if self.X_future is None else self.X_future[idx]
        return Panel(self.ids[idx], indptr, self.ds[rows], self.y[rows], self.freq, X, Xf,
                     self.exog)  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """The long ``unique_id, ds, y`` frame."""
        return pd.DataFrame(
            {"unique_id": np.repeat(self.ids, self.lengths), "ds": self.ds, "y": self.y}
        )

    def future_ds(self, h: int) -> np.ndarray:
        """The ``h`` dates after each series' last date, shape (n_series, h)."""
        out = np.empty((self.n_series, h), dtype="datetime64[ns]")
        if self.n_series == 0:
            return out
        last = self.ds[self.indptr[1:] - 1]
        uniq, inv = np.unique(last, return_inverse=True)
        for k, start in enumerate(uniq):
            dates = pd.date_range(start=pd.Timestamp(start), periods=h + 1, freq=self.freq)[1:]
            out[inv == k] = dates.to_numpy(dtype="datetime64[ns]")
        return out


@dataclass(frozen=True, eq=False)
class ModelOutput:
    """What a model returns for the ``n`` series of the panel it was given.

    Attributes
    ----------
    mean : ndarray, shape (n, h)
        Point forecasts.
    fitted : ndarray, shape (n_obs,)
        In-sample fitted values aligned with ``panel.y`` (NaN where the model has none).
    lo, hi : dict int -> ndarray (n, h)
        Interval bounds for each requested level (empty when ``level`` is empty).
    samples : ndarray (n, h, n_samples) or None
        Predictive sample paths, for models that produce them.
    failures : dict int -> str
        Position in the panel -> reason, for series the model could not forecast. Their rows in
        the arrays above are ignored (``forecast`` refits them with the fallback).
    """

    mean: np.ndarray
    fitted: np.ndarray
    lo: Mapping[int, np.ndarray] = field(default_factory=dict)
    hi: Mapping[int, np.ndarray] = field(default_factory=dict)
    samples: np.ndarray | None = None
    failures: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def empty(
        cls,
        n: int,
        h: int,
        level: Sequence[int],
        n_obs: int,
        failures: Mapping[int, str] | None = None,
    ) -> ModelOutput:
        """All-NaN output for ``n`` series with ``n_obs`` observations (rows filled later)."""
        return cls(
            np.full((n, h), np.nan),
            np.full(n_obs, np.nan),
            {lv: np.full((n, h), np.nan) for lv in level},
            {lv: np.full((n, h), np.nan) for lv in level},
            failures=dict(failures or {}),
        )

    def place(self, out: ModelOutput, idx: np.ndarray, panel: Panel) -> ModelOutput:
        """Write ``out`` (the output for series ``idx`` of ``panel``) into this full-size output.

        The arrays are filled in place; the returned output carries ``out``'s sample paths
        (spread to full size) and this output's failures.
        """
        self.mean[idx] = out.mean
        self.fitted[panel.rows(idx)] = out.fitted
        for lv in self.lo:
            self.lo[lv][idx], self.hi[lv][idx] = out.lo[lv], out.hi[lv]
        samples = None
        if out.samples is not None:
            samples = np.full((panel.n_series, *np.shape(out.samples)[1:]), np.nan)
            samples[idx] = out.samples
        return replace(self, samples=samples)


@runtime_checkable
class Forecaster(Protocol):
    """A model that can be fitted at every node.

    Implement one method. Optionally define ``min_obs`` (int attribute or property): series with
    fewer observations are not given to the model but sent straight to the fallback.
    """

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Fit every series of ``panel`` and forecast ``h`` steps.

        Parameters
        ----------
        panel : Panel
            The series (validated: sorted, on ``panel.freq``, no gaps, finite values).
        h : int
            Forecast horizon (steps).
        level : tuple of int
            Interval levels in percent, sorted (may be empty).
        executor : Executor
            How to run independent per-node work (``executor.map``) and how many jobs to use
            (``executor.n_jobs``).

        Returns
        -------
        ModelOutput
            Arrays for all ``panel.n_series`` series; failures reported, not raised.
        """
        ...


@dataclass(frozen=True, eq=False)
class SeriesForecast:
    """One series' result from :meth:`SeriesForecaster.fit_predict_series`.

    ``mean`` has shape (h,), ``fitted`` (n_obs,), ``lo`` / ``hi`` map level -> (h,) and
    ``samples`` is (h, n_samples) or None.
    """

    mean: np.ndarray
    fitted: np.ndarray
    lo: Mapping[int, np.ndarray] = field(default_factory=dict)
    hi: Mapping[int, np.ndarray] = field(default_factory=dict)
    samples: np.ndarray | None = None


class SeriesForecaster(ABC):
    """Base class for models fitted one series at a time (e.g. Prophet).

    Subclasses write :meth:`fit_predict_series`; exceptions it raises become failures of that node
    (and the node falls back). The instance is pickled to worker processes when ``n_jobs > 1``.
    A model that sets ``uses_exog = True`` also receives ``X`` (DataFrame, one row per
    observation) and ``X_future`` (DataFrame, h rows): the regressors available at that node.
    """

    #: Series shorter than this go straight to the fallback.
    min_obs: int = 1
    #: Whether ``fit_predict_series`` takes the keyword arguments ``X`` and ``X_future``.
    uses_exog: bool = False

    @abstractmethod
    def fit_predict_series(
        self,
        uid: str,
        ds: np.ndarray,
        y: np.ndarray,
        h: int,
        level: tuple[int, ...],
        future_ds: np.ndarray,
    ) -> SeriesForecast:
        """Fit one series (dates ``ds``, values ``y``) and forecast the dates ``future_ds``."""

    def worker_context(self) -> AbstractContextManager[object]:
        """Context entered around a chunk of fits in the worker (e.g. to silence logging)."""
        return nullcontext()

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Run :meth:`fit_predict_series` on every series through ``executor``."""
        chunks = executor.partition(panel.n_series)
        parts = [panel.subset(c) for c in chunks]
        results = executor.map(
            partial(_run_chunk, self, h, level),
            parts,
            sizes=[p.n_series for p in parts],
            desc=type(self).__name__,
        )
        order = np.concatenate(chunks) if chunks else np.array([], dtype=np.int64)
        flat: list[SeriesForecast | str] = [r for part in results for r in part]
        return _assemble(panel, h, level, order, flat)


def _run_chunk(
    model: SeriesForecaster, h: int, level: tuple[int, ...], panel: Panel
) -> list[SeriesForecast | str]:
    """Fit every series of one chunk; a failure is returned as its reason string."""
    future = panel.future_ds(h)
    exog = bool(getattr(model, "uses_exog", False)) and panel.X is not None
    out: list[SeriesForecast | str] = []
    with model.worker_context():
        for i in range(panel.n_series):
            ds, y = panel.series(i)
            kw = series_exog(panel, i, h) if exog else {}
            try:
                out.append(
                    model.fit_predict_series(str(panel.ids[i]), ds, y, h, level, future[i], **kw)
                )
            except Exception as exc:
                out.append(describe_error(exc))
    return out


def describe_error(exc: BaseException) -> str:
    """Short one-line reason for a failure: ``"ValueError: message"``."""
    msg = " ".join(str(exc).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _assemble(
    panel: Panel,
    h: int,
    level: tuple[int, ...],
    order: np.ndarray,
    results: list[SeriesForecast | str],
) -> ModelOutput:
    """Stack per-series results (series ``order[k]`` -> ``results[k]``) into a ModelOutput."""
    n = panel.n_series
    out = ModelOutput.empty(n, h, level, len(panel.y))
    n_samp = {
        r.samples.shape[1]
        for r in results
        if isinstance(r, SeriesForecast) and r.samples is not None
    }
    samples = np.full((n, h, max(n_samp)), np.nan) if n_samp else None
    failures: dict[int, str] = {}
    for i, res in zip(order.tolist(), results):
        if isinstance(res, str):
            failures[i] = res
            continue
        try:
            _store(i, res, panel, out, samples)
        except (ValueError, KeyError) as exc:
            failures[i] = f"malformed output ({describe_error(exc)})"
    return replace(out, samples=samples, failures=failures)


def _store(
    i: int, res: SeriesForecast, panel: Panel, out: ModelOutput, samples: np.ndarray | None
) -> None:
    out.mean[i] = res.mean
    out.fitted[panel.indptr[i] : panel.indptr[i + 1]] = res.fitted
    for lv in out.lo:
        out.lo[lv][i] = res.lo[lv]
        out.hi[lv][i] = res.hi[lv]
    if samples is not None:
        if res.samples is None or res.samples.shape[1] != samples.shape[2]:
            raise ValueError("every series must return the same number of sample paths")
        samples[i] = res.samples
