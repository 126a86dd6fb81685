"""Any statsforecast model at every node, through one ``StatsForecast`` call.

statsforecast fits the series itself (numba kernels, its own ``n_jobs`` processes); this adapter
only converts the panel to its long frame and its output back to arrays, and makes failures
robust without touching statsforecast's internals: series too short for the model are never
given to it (``min_obs``); when the model raises on some node, the batch is split in halves and
refitted until the failing nodes stand alone (their exception is the recorded reason), so one bad
node does not abort the batch and every other node's numbers are exactly statsforecast's.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from htsforecast._exog import exog_frames, exog_groups
from htsforecast.models._execution import LocalExecutor
from htsforecast.models._protocol import ModelOutput, Panel, describe_error

if TYPE_CHECKING:
    from htsforecast.models._execution import Executor

__all__ = ["StatsForecastModel"]

#: Fewest observations each statsforecast model needs (found by probing statsforecast 2.1).
_MIN_OBS = {
    "AutoETS": 7,
    "AutoCES": 5,
    "AutoTheta": 4,
    "Theta": 4,
    "OptimizedTheta": 4,
    "DynamicTheta": 4,
    "DynamicOptimizedTheta": 4,
    "Holt": 9,
    "HoltWinters": 9,
}
_LOOP_BELOW = 8  # a failing batch this small is refitted one series at a time
_SERIAL = LocalExecutor(n_jobs=1)


class StatsForecastModel:
    """Wrap a statsforecast model (``AutoETS(season_length=12)``, ``AutoARIMA()``, ...).

    Parameters
    ----------
    model
        A statsforecast model instance. It must support ``fitted=True`` (in-sample values).
    min_obs : int, optional
        Series with fewer observations go straight to the fallback. Default: a table of known
        minima (AutoETS 7, AutoTheta 4, SeasonalNaive ``season_length`` ...), else 1.

    Notes
    -----
    All nodes go through one ``StatsForecast(models=[model], freq, n_jobs).forecast(df, h,
    level, fitted=True)`` call, so the numbers are exactly statsforecast's. With regressors
    (``forecast(..., X_future=...)``) and a model that accepts them (:attr:`uses_exog`), ``df``
    carries them and ``X_df`` their future values: one call per set of regressors available
    at the nodes (one call unless a ``LevelCovariate(rule=None)`` leaves some nodes without).
    """

    def __init__(self, model: Any, *, min_obs: int | None = None) -> None:
        if not hasattr(model, "forecast"):
            raise TypeError(
                f"StatsForecastModel needs a statsforecast model such as AutoETS(), got "
                f"{type(model).__name__}."
            )
        self.model = model
        self._min_obs = min_obs

    def __repr__(self) -> str:
        return f"StatsForecastModel({self.model!r})"

    @property
    def uses_exog(self) -> bool:
        """True when the model takes exogenous regressors (AutoARIMA, ARIMA, AutoRegressive,
        MSTL with an ARIMA trend ...), from statsforecast's own ``uses_exog`` flags."""
        trend = getattr(self.model, "trend_forecaster", None)
        return bool(getattr(self.model, "uses_exog", False) or getattr(trend, "uses_exog", False))

    @property
    def min_obs(self) -> int:
        """Fewest observations this model is given (shorter series fall back)."""
        if self._min_obs is not None:
            return int(self._min_obs)
        name = type(self.model).__name__
        season = int(getattr(self.model, "season_length", 1) or 1)
        if name == "SeasonalNaive":
            return season
        if name in ("WindowAverage", "SeasonalWindowAverage"):
            return season * int(getattr(self.model, "window_size", 1))
        return _MIN_OBS.get(name, 1)

    def fit_predict(
        self, panel: Panel, h: int, level: tuple[int, ...], executor: Executor
    ) -> ModelOutput:
        """Forecast every series with one statsforecast call (see class docstring)."""
        if panel.n_series == 0:
            return ModelOutput(np.empty((0, h)), np.empty(0))
        groups = exog_groups(panel) if self.uses_exog else []
        if len(groups) > 1:  # nodes with different regressors: one call per set
            full = ModelOutput.empty(panel.n_series, h, level, len(panel.y))
            for idx, _ in groups:
                out = self.fit_predict(panel.subset(idx), h, level, executor)
                full = full.place(out, idx, panel)
                full = replace(full, failures={**full.failures,
                               **{int(idx[j]): r for j, r in out.failures.items()}})  # fmt: skip
            return full
        failures: dict[int, str] = {}
        parts = self._fit_parts(panel, np.arange(panel.n_series), h, level, executor, failures)
        if len(parts) == 1 and not failures:
            return parts[0][1]
        full = ModelOutput.empty(panel.n_series, h, level, len(panel.y), failures)
        for idx, out in parts:
            full = full.place(out, idx, panel)
        return full

    def _fit_parts(
        self,
        panel: Panel,
        idx: np.ndarray,
        h: int,
        level: tuple[int, ...],
        executor: Executor,
        failures: dict[int, str],
    ) -> list[tuple[np.ndarray, ModelOutput]]:
        """Fit series ``idx`` in one call; if the model raises, split and refit the parts.

        A series that fails alone records the model's own exception as its reason.
        """
        try:
            return [(idx, self._run(panel.subset(idx), h, level, executor))]
        except Exception as exc:
            if len(idx) == 1:
                failures[int(idx[0])] = describe_error(exc)
                return []
        if len(idx) <= _LOOP_BELOW:  # one series at a time, in this process
            parts, executor = [idx[[k]] for k in range(len(idx))], _SERIAL
        else:
            parts = np.array_split(idx, 2)
        return [p for part in parts for p in self._fit_parts(panel, part, h, level, executor, failures)]

    def _statsforecast(self, freq: str, n_jobs: int, verbose: bool) -> Any:
        from statsforecast import StatsForecast

        return StatsForecast(models=[self.model], freq=freq, n_jobs=n_jobs, verbose=verbose)

    def _run(
        self,
        panel: Panel,
        h: int,
        level: tuple[int, ...],
        executor: Executor,
    ) -> ModelOutput:
        """One statsforecast call on ``panel``; output reordered to the panel's series order."""
        sf = self._statsforecast(panel.freq, executor.n_jobs, executor.progress)
        run = getattr(executor, "run_statsforecast", run_statsforecast)
        df, X_df = self._frames(panel, h)
        if X_df is None:
            fc, fv = run(sf, df, h, list(level) or None)
        else:
            fc, fv = run(sf, df, h, list(level) or None, X_df=X_df)
        return _from_statsforecast(panel, h, level, fc, fv, _alias(self.model))

    def _frames(self, panel: Panel, h: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """statsforecast's ``df`` and ``X_df`` (None without regressors the model uses)."""
        columns = exog_groups(panel)[0][1] if self.uses_exog else []
        if not columns:
            return panel.to_frame(), None
        return exog_frames(panel, columns, h)


def run_statsforecast(
    sf: Any,
    df: pd.DataFrame,
    h: int,
    level: list[int] | None,
    X_df: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``sf.forecast(df, h, level, X_df, fitted=True)`` here; return (forecasts, fitted).

    An executor may define a method with this signature, ``run_statsforecast``, to run the same
    call on a distributed engine (statsforecast accepts Dask / Spark frames through fugue); the
    returned frames must be pandas. ``X_df`` (future regressors) is passed only when the model
    uses regressors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fc = sf.forecast(df=df, h=h, level=level, X_df=X_df, fitted=True)
        fv = sf.forecast_fitted_values()
    return fc, fv


def _alias(model: Any) -> str:
    return str(getattr(model, "alias", None) or repr(model))


def _from_statsforecast(
    panel: Panel,
    h: int,
    level: tuple[int, ...],
    fc: pd.DataFrame,
    fv: pd.DataFrame,
    alias: str,
) -> ModelOutput:
    """Convert statsforecast's forecast and fitted frames to arrays in the panel's order."""
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    fc_ids = fc["unique_id"].to_numpy()[::h]
    pos = pd.Index(fc_ids).get_indexer(panel.ids)
    if (pos < 0).any():
        missing = panel.ids[pos < 0][:5].tolist()
        raise RuntimeError(f"statsforecast returned no forecast for {missing}")

    def block(col: str) -> np.ndarray:
        return fc[col].to_numpy(dtype=np.float64).reshape(len(fc_ids), h)[pos]

    lo = {lv: block(f"{alias}-lo-{lv}") for lv in level}
    hi = {lv: block(f"{alias}-hi-{lv}") for lv in level}
    fv_ids = fv["unique_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, fv_ids[1:] != fv_ids[:-1]])
    fv_pos = pd.Index(fv_ids[starts]).get_indexer(panel.ids)
    rows = np.repeat(starts[fv_pos] - panel.indptr[:-1], panel.lengths) + np.arange(len(panel.y))
    fitted = fv[alias].to_numpy(dtype=np.float64)[rows]
    return ModelOutput(mean=block(alias), fitted=fitted, lo=lo, hi=hi)
